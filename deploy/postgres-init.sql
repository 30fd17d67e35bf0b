-- Runs once, when the PostgreSQL volume is first initialised (deploy/compose.yml): the
-- database of Rasa's tracker store, beside the clinic's own (POSTGRES_DB=clinic).
CREATE DATABASE rasa OWNER clinic;
