-- Orchestrator–worker: an orchestrator appends tasks keyed by task id;
-- workers in a consumer group pull from the partitions they own and
-- publish results to a second stream. Each worker commits its offsets in
-- the same transaction as its results, so every task is processed exactly
-- once even when a worker dies mid-task.
--
-- Run with: psql -h 127.0.0.1 -p 5487 -U brikk brikk -v ON_ERROR_STOP=1 -f sql-examples/orchestrator_worker.sql
-- In production each agent has its own connection; here one psql session
-- plays them in turn (\gset keeps a fetched row's columns in variables).

DROP STREAM IF EXISTS tasks, results, tasks_dead_letters;
CREATE STREAM tasks (task_id TEXT, kind TEXT, payload TEXT) WITH (partitions = 4, key = 'task_id');
CREATE STREAM results (task_id TEXT, worker TEXT, output TEXT) WITH (partitions = 4, key = 'task_id');

-- The orchestrator hands out work.
INSERT INTO tasks VALUES
  ('t1', 'summarize', 'quarterly report'),
  ('t2', 'translate', 'hello world'),
  ('t3', 'summarize', 'meeting notes'),
  ('t4', 'classify',  'support ticket 81');

-- worker-1 joins the group and owns every partition while it is alone.
SUBSCRIBE tasks GROUP workers MEMBER 'worker-1';
SELECT member, partitions FROM brikk_members WHERE group_name = 'workers';

-- One task per transaction: fetch, produce the result, commit the offset.
BEGIN;
FETCH 1 FROM tasks GROUP workers \gset
INSERT INTO results VALUES (:'task_id', 'worker-1', upper(:'payload'));
COMMIT OFFSETS FOR tasks GROUP workers;
COMMIT;

BEGIN;
FETCH 1 FROM tasks GROUP workers \gset
INSERT INTO results VALUES (:'task_id', 'worker-1', upper(:'payload'));
COMMIT OFFSETS FOR tasks GROUP workers;
COMMIT;

-- worker-1 fetches a third task, then dies before committing: its
-- transaction, and the result in it, are gone.
BEGIN;
FETCH 1 FROM tasks GROUP workers \gset
INSERT INTO results VALUES (:'task_id', 'worker-1', 'never seen');
ROLLBACK;
UNSUBSCRIBE tasks GROUP workers;

-- Two tasks are left for whoever takes over the partitions.
SELECT sum(lag) AS tasks_left FROM brikk_groups WHERE group_name = 'workers';

-- worker-2 picks up where worker-1 committed.
SUBSCRIBE tasks GROUP workers MEMBER 'worker-2';
BEGIN;
FETCH 1 FROM tasks GROUP workers \gset
INSERT INTO results VALUES (:'task_id', 'worker-2', upper(:'payload'));
COMMIT OFFSETS FOR tasks GROUP workers;
COMMIT;
BEGIN;
FETCH 1 FROM tasks GROUP workers \gset
INSERT INTO results VALUES (:'task_id', 'worker-2', upper(:'payload'));
COMMIT OFFSETS FOR tasks GROUP workers;
COMMIT;

-- Nothing is left; a worker would now wait: FETCH ... WAIT '5s' returns as
-- soon as the orchestrator appends, or empty when the wait ends.
FETCH 10 FROM tasks GROUP workers WAIT '100ms';
SELECT sum(lag) AS tasks_left FROM brikk_groups WHERE group_name = 'workers';

-- The orchestrator collects the results: every task exactly once.
SELECT task_id, output FROM results ORDER BY task_id;

-- Replay: the same group can start over, e.g. after a bug fix.
ALTER GROUP workers ON tasks RESET TO EARLIEST;
SELECT sum(lag) AS tasks_to_replay FROM brikk_groups WHERE group_name = 'workers';
UNSUBSCRIBE tasks GROUP workers;

-- Workers that do not care about order can share records one by one:
-- a work queue with leases, acknowledgements and dead letters.
CREATE GROUP solvers ON tasks WITH (mode = 'queue', max_deliveries = 3);
CLAIM 1 FROM tasks GROUP solvers LEASE '30s' MEMBER 'solver-1' \gset
ACK tasks GROUP solvers (:_partition, :_offset);
SELECT count(*) AS claimed_not_acked FROM brikk_claims WHERE group_name = 'solvers';
