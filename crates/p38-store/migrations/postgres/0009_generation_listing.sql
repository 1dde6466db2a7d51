-- Generations are listed newest first, optionally of one status
-- (`GET /api/generations?status=`); `cancelled` is a status of its own.
CREATE INDEX generations_status_id ON generations (status, id);
