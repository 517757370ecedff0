-- An Idempotency-Key is now written in the transaction of the create it
-- belongs to, with its response; a request in flight holds a transaction
-- advisory lock on the key instead of a row, so a process that dies
-- mid-request leaves no claim behind. Rows without a response are claims an
-- older build left for requests that never committed: they are taken over.
COMMENT ON COLUMN idempotency_keys.response IS
    'the first response; NULL only in a claim an older build left behind';
