-- Blackboard: agents post hypotheses to a shared table, revise them with
-- compare-and-set so no revision is lost, and a reader agent follows every
-- change through the table's changelog — as a query, as a consumer group,
-- or as the table as it was at any earlier change.
--
-- Run with: psql -h 127.0.0.1 -p 5487 -U brikk brikk -v ON_ERROR_STOP=1 -f sql-examples/blackboard.sql
-- In production each agent has its own connection; here one psql session
-- plays them in turn (\gset keeps a row's columns in variables).

DROP VIEW IF EXISTS open_hypotheses;
DROP TABLE IF EXISTS board;
DROP STREAM IF EXISTS decisions;
CREATE TABLE board (
  topic      TEXT PRIMARY KEY,
  hypothesis TEXT,
  evidence   JSONB,
  author     TEXT NOT NULL,
  version    BIGINT NOT NULL
);
CREATE STREAM decisions (topic TEXT, decision TEXT);

-- The planner and the critic post their first hypotheses.
INSERT INTO board VALUES
  ('cause',  'the cache is cold after deploys', '{"signals": ["latency"], "confidence": 0.4}', 'planner', 1),
  ('fix',    'pre-warm the cache',              '{"signals": [], "confidence": 0.2}',         'planner', 1),
  ('impact', 'p99 doubles for ten minutes',     '{"signals": ["p99"], "confidence": 0.6}',    'critic',  1);

-- Posting a topic twice is an error: agents upsert instead.
INSERT INTO board VALUES ('impact', 'p99 triples', '{"signals": ["p99", "errors"], "confidence": 0.7}', 'critic', 1)
  ON CONFLICT (topic) DO UPDATE
  SET hypothesis = excluded.hypothesis, evidence = excluded.evidence, version = board.version + 1;

-- Two agents read the same version of 'cause' and both try to revise it.
SELECT version AS seen FROM board WHERE topic = 'cause' \gset
UPDATE board SET hypothesis = 'a connection pool is exhausted', author = 'researcher', version = version + 1
 WHERE topic = 'cause' AND version = :seen;
-- The critic's revision was based on the same version: UPDATE 0, nothing lost.
UPDATE board SET hypothesis = 'disk is slow', author = 'critic', version = version + 1
 WHERE topic = 'cause' AND version = :seen;

-- The critic re-reads and builds on the researcher's revision instead.
SELECT version AS seen FROM board WHERE topic = 'cause' \gset
UPDATE board SET evidence = '{"signals": ["pool wait", "latency"], "confidence": 0.8}', version = version + 1
 WHERE topic = 'cause' AND version = :seen;

-- Facts are JSON: query inside them.
SELECT topic, evidence ->> 'confidence' AS confidence
  FROM board WHERE evidence @> '{"signals": ["latency"]}' ORDER BY topic;

-- A decision and the revision that led to it land atomically (an outbox).
BEGIN;
UPDATE board SET hypothesis = 'raise the pool size', author = 'planner', version = version + 1 WHERE topic = 'fix';
INSERT INTO decisions VALUES ('fix', 'raise pool size to 64');
COMMIT;

-- The reader agent: every change, in order, with what it did.
SELECT _offset, op, topic, author, version FROM changes(board) ORDER BY _offset;

-- ... or as a consumer group, picking up where it left off.
SUBSCRIBE board GROUP readers MEMBER 'reader-1';
FETCH 100 FROM board GROUP readers;
COMMIT OFFSETS FOR board GROUP readers;
UPDATE board SET version = version + 1 WHERE topic = 'impact';
FETCH 100 FROM board GROUP readers;
UNSUBSCRIBE board GROUP readers;

-- What did the board say before the researcher's revision?
SELECT topic, hypothesis, version FROM board AS OF OFFSET 3 ORDER BY topic;

-- A revision of part of a fact: raise the confidence and note the reviewer,
-- keeping the rest of the evidence as it is (still compare-and-set).
UPDATE board SET evidence = jsonb_set(evidence, '{confidence}', '0.9') || '{"reviewed_by": "researcher"}',
                 version = version + 1
 WHERE topic = 'impact' AND version = 3
 RETURNING topic, evidence, version;

-- What an agent puts in its prompt: the board as one JSON document, and
-- every signal the hypotheses cite, one row each.
SELECT json_agg(b ORDER BY topic) AS board_json
  FROM (SELECT topic, hypothesis, evidence -> 'confidence' AS confidence FROM board) b;
SELECT signal, count(*) AS cited_by
  FROM board, jsonb_array_elements_text(board.evidence -> 'signals') AS signal
 GROUP BY signal ORDER BY signal;

-- The board grows a column while agents use it (no rewrite: existing
-- facts read its default), and the decisions close what they settled.
ALTER TABLE board ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
UPDATE board b SET status = 'decided' FROM decisions d WHERE d.topic = b.topic;

-- What an agent reads first: the open hypotheses, as a view.
CREATE VIEW open_hypotheses AS SELECT topic, hypothesis, author FROM board WHERE status = 'open';
SELECT * FROM open_hypotheses ORDER BY topic;

-- The board now.
SELECT topic, hypothesis, author, version FROM board ORDER BY topic;
SELECT * FROM decisions;
