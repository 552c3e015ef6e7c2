DROP TABLE one_time_tokens;
