-- Market: requesters post bids (a task with a budget), solvers post asks
-- (a skill at a price), and a continuous query inside Brikk matches them
-- with price-time priority and publishes trades exactly once. Solvers
-- take their trades from the trades stream as a consumer group.
--
-- Run with: psql -h 127.0.0.1 -p 5487 -U brikk brikk -v ON_ERROR_STOP=1 -f sql-examples/market.sql
-- In production each agent has its own connection; here one psql session
-- plays them in turn.

DROP CONTINUOUS QUERY IF EXISTS market;
DROP STREAM IF EXISTS bids, asks, cancels, trades;

-- Order streams name their columns by convention: id, price, qty, and
-- optionally expires_at; any other columns are there for ON and PRICE.
CREATE STREAM bids (id TEXT, requester TEXT, skill TEXT, price DOUBLE PRECISION, qty BIGINT, expires_at TIMESTAMPTZ);
CREATE STREAM asks (id TEXT, solver TEXT, skill TEXT, price DOUBLE PRECISION, qty BIGINT);
CREATE STREAM cancels (side TEXT, id TEXT);
CREATE STREAM trades (bid_id TEXT, ask_id TEXT, quantity BIGINT, price DOUBLE PRECISION,
                      bid_offset BIGINT, ask_offset BIGINT) WITH (partitions = 2, key = 'ask_id');

-- The market maker is a query: same skill, budget covers the price; the
-- trade happens at the solver's price.
CREATE CONTINUOUS QUERY market AS
  INSERT INTO trades
  SELECT * FROM MATCH_ORDERS(bids, asks, CANCELS cancels,
    ON bids.skill = asks.skill AND bids.price >= asks.price,
    PRICE asks.price);

-- Solvers offer their skills.
INSERT INTO asks VALUES
  ('ask-1', 'solver-a', 'translate', 8, 3),
  ('ask-2', 'solver-b', 'translate', 6, 1),
  ('ask-3', 'solver-c', 'summarize', 5, 2),
  ('ask-4', 'solver-d', 'translate', 12, 5);

-- Solvers follow their trades as a consumer group.
SUBSCRIBE trades GROUP solvers MEMBER 'solver-pool';

-- A requester needs 3 translations and pays up to 10 each: the cheapest
-- ask fills first (ask-2 at 6), then ask-1 at 8 for the rest; ask-4 at 12
-- is over budget.
INSERT INTO bids VALUES ('bid-1', 'req-x', 'translate', 10, 3, now() + interval '1 hour');

-- FETCH … WAIT returns as soon as the market's step has committed.
FETCH 10 FROM trades GROUP solvers WAIT '10s';
COMMIT OFFSETS FOR trades GROUP solvers;

-- What is left in the book, per price level.
SELECT side, book, price, quantity, orders FROM order_book('market') ORDER BY side, book, price;

-- A requester changes its mind before anyone matches it; another bid
-- expired before a solver came.
INSERT INTO bids VALUES ('bid-2', 'req-y', 'summarize', 4, 1, now() + interval '1 hour'),
                        ('bid-3', 'req-z', 'translate', 7, 1, now() - interval '1 second');
INSERT INTO cancels VALUES ('bid', 'bid-2');

-- A solver lowers its price: summaries at 3 now meet nobody (bid-2 was
-- cancelled); a new bid buys the last translation at 8.
INSERT INTO asks VALUES ('ask-5', 'solver-c', 'summarize', 3, 1);
INSERT INTO bids VALUES ('bid-4', 'req-w', 'translate', 9, 1, NULL);

FETCH 10 FROM trades GROUP solvers WAIT '10s';
COMMIT OFFSETS FOR trades GROUP solvers;
UNSUBSCRIBE trades GROUP solvers;

SELECT side, book, price, quantity, orders FROM order_book('market') ORDER BY side, book, price;

-- Every trade, and the market's own accounting.
SELECT bid_id, ask_id, quantity, price FROM trades ORDER BY bid_id, ask_id;
SELECT name, status, inputs, lag, records_in, records_out FROM brikk_queries;
