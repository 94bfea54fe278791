-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d),
-- as POSTGRES_USER: one database per service, so no service reads another's tables.
CREATE DATABASE booking;
CREATE DATABASE notifier;
CREATE DATABASE aftercare;
