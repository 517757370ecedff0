-- After a NATS restart the relay looks for the first row whose message the
-- stream lost: a binary search over (stream, stream_seq), one lookup per
-- probe. Without this index each probe read the whole outbox (seconds at an
-- hour of rows). Only published rows carry a stream_seq, and each is
-- written once, when the row is marked published.
CREATE INDEX outbox_by_stream_seq ON outbox (stream, stream_seq) WHERE stream_seq IS NOT NULL;
