-- Fencing for database writes (DESIGN I3). Every change made under a circuit's etcd lock records
-- that lock's create revision and applies only if no newer lock holder has written: etcd create
-- revisions only grow, and the FIFO mutex grants locks in create-revision order, so a writer
-- whose lock expired while it was paused can no longer commit after the lock's next owner.
-- (Restoring etcd from scratch resets revisions: then reset this column to 0, see README.)
ALTER TABLE circuits ADD COLUMN lock_revision bigint NOT NULL DEFAULT 0;
