DROP TABLE medical_records;
