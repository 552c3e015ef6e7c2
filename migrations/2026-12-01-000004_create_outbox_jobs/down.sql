DROP TABLE outbox_jobs;
