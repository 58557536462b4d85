-- name: ingest_lag
-- description: Events whose ingested_at is more than max_lag_seconds away from occurred_at (late, or stored before they happened), largest first.
-- param: max_lag_seconds = 60 (default)
-- Only shapes that carry ingested_at (table dumps, search pages) can answer; lag_seconds
-- is negative when the event was stored before it occurred.
SELECT
    zone_id,
    chain_seq,
    id,
    event_type,
    occurred_at,
    ingested_at,
    (epoch_us(ingested_at) - epoch_us(occurred_at)) / 1000000 AS lag_seconds,
    source_file,
    source_line
FROM unique_events
WHERE ingested_at IS NOT NULL
  AND abs(epoch_us(ingested_at) - epoch_us(occurred_at)) > CAST($max_lag_seconds AS DOUBLE) * 1000000
ORDER BY abs(epoch_us(ingested_at) - epoch_us(occurred_at)) DESC, zone_id, chain_seq, id
