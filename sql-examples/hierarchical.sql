-- Hierarchical agents: every non-leaf agent orchestrates its subtree, and
-- siblings form a consumer group on their parent's stream. A three-level
-- tree:
--
--                    root (appends goals)
--                     │  stream goals, group leads
--          ┌──────────┴──────────┐
--     lead-research          lead-writing      (workers of the root,
--          │ stream research     │ stream writing   orchestrators below)
--     researchers group      writers group
--
-- Adding or removing an agent changes no topology: it joins or leaves a
-- group, and the partitions move.
--
-- Run with: psql -h 127.0.0.1 -p 5487 -U brikk brikk -v ON_ERROR_STOP=1 -f sql-examples/hierarchical.sql
-- One psql session plays every agent in turn (\gset keeps a fetched row's
-- columns in variables); in production each agent has its own connection.

DROP STREAM IF EXISTS goals, research, writing, reports;
CREATE STREAM goals (goal_id TEXT, area TEXT, brief TEXT) WITH (partitions = 2, key = 'goal_id');
CREATE STREAM research (goal_id TEXT, step TEXT) WITH (partitions = 2, key = 'goal_id');
CREATE STREAM writing (goal_id TEXT, step TEXT) WITH (partitions = 2, key = 'goal_id');
CREATE STREAM reports (goal_id TEXT, level TEXT, agent TEXT, note TEXT);

-- Level 1: the root posts two goals.
INSERT INTO goals VALUES ('g1', 'research', 'survey vector databases'),
                         ('g2', 'writing',  'draft the launch post');

-- Level 2: the leads are the root's workers. A lead takes a goal, splits
-- it into steps on its own stream and reports up, in one transaction.
SUBSCRIBE goals GROUP leads MEMBER 'lead-research';
BEGIN;
FETCH 1 FROM goals GROUP leads \gset
INSERT INTO research VALUES (:'goal_id', 'collect sources'), (:'goal_id', 'compare features');
INSERT INTO reports VALUES (:'goal_id', 'lead', 'lead-research', 'split into 2 steps');
COMMIT OFFSETS FOR goals GROUP leads;
COMMIT;
UNSUBSCRIBE goals GROUP leads;

SUBSCRIBE goals GROUP leads MEMBER 'lead-writing';
BEGIN;
FETCH 1 FROM goals GROUP leads \gset
INSERT INTO writing VALUES (:'goal_id', 'outline'), (:'goal_id', 'first draft'), (:'goal_id', 'edit');
INSERT INTO reports VALUES (:'goal_id', 'lead', 'lead-writing', 'split into 3 steps');
COMMIT OFFSETS FOR goals GROUP leads;
COMMIT;
UNSUBSCRIBE goals GROUP leads;

-- Level 3: each lead's workers form a group on the lead's stream.
SUBSCRIBE research GROUP researchers MEMBER 'researcher-1';
BEGIN;
FETCH 10 FROM research GROUP researchers;
INSERT INTO reports VALUES ('g1', 'worker', 'researcher-1', 'sources collected, features compared');
COMMIT OFFSETS FOR research GROUP researchers;
COMMIT;
UNSUBSCRIBE research GROUP researchers;

SUBSCRIBE writing GROUP writers MEMBER 'writer-1';
BEGIN;
FETCH 10 FROM writing GROUP writers;
INSERT INTO reports VALUES ('g2', 'worker', 'writer-1', 'outlined, drafted, edited');
COMMIT OFFSETS FOR writing GROUP writers;
COMMIT;
UNSUBSCRIBE writing GROUP writers;

-- Every level has drained its stream.
SELECT group_name, sum(lag) AS left_to_do FROM brikk_groups
  WHERE stream IN ('goals', 'research', 'writing') GROUP BY group_name ORDER BY group_name;

-- The root reads the tree's reports.
SELECT goal_id, level, agent, note FROM reports ORDER BY goal_id, level;
