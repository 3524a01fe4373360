"""The database schema as numbered migrations, each applied in a transaction and recorded.

Add a migration by appending to :data:`MIGRATIONS`; never edit one that has shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "Migration", "latest_version"]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "experiments, inputs, analyses, memos", """
        CREATE SEQUENCE experiment_ids START 1;
        CREATE SEQUENCE analysis_ids START 1;
        CREATE SEQUENCE memo_ids START 1;
        CREATE TABLE experiments (
            id BIGINT PRIMARY KEY DEFAULT nextval('experiment_ids'),
            name VARCHAR NOT NULL,
            hypothesis VARCHAR,
            primary_metric VARCHAR NOT NULL,
            owner VARCHAR,
            tags VARCHAR[] NOT NULL DEFAULT [],
            mde VARCHAR,
            planned_sample BIGINT,
            start_date DATE,
            end_date DATE,
            created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp()
        );
        CREATE TABLE inputs (
            sha256 VARCHAR PRIMARY KEY,
            filename VARCHAR NOT NULL,
            size BIGINT NOT NULL,
            content BLOB NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp()
        );
        CREATE TABLE analyses (
            id BIGINT PRIMARY KEY DEFAULT nextval('analysis_ids'),
            experiment_id BIGINT NOT NULL,
            input_sha256 VARCHAR NOT NULL,
            request_json VARCHAR NOT NULL,
            policy_json VARCHAR NOT NULL,
            report_json VARCHAR NOT NULL,
            analytics_version VARCHAR NOT NULL,
            decision VARCHAR NOT NULL,
            health VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp()
        );
        CREATE TABLE memos (
            id BIGINT PRIMARY KEY DEFAULT nextval('memo_ids'),
            analysis_id BIGINT NOT NULL,
            version INTEGER NOT NULL,
            markdown VARCHAR NOT NULL,
            notes VARCHAR,
            author VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
            UNIQUE (analysis_id, version)
        );
    """),
    Migration(2, "primary-effect columns and indexes for history and comparison", """
        ALTER TABLE analyses ADD COLUMN primary_treatment VARCHAR;
        ALTER TABLE analyses ADD COLUMN absolute_effect DOUBLE;
        ALTER TABLE analyses ADD COLUMN absolute_ci_low DOUBLE;
        ALTER TABLE analyses ADD COLUMN absolute_ci_high DOUBLE;
        ALTER TABLE analyses ADD COLUMN relative_effect DOUBLE;
        ALTER TABLE analyses ADD COLUMN relative_ci_low DOUBLE;
        ALTER TABLE analyses ADD COLUMN relative_ci_high DOUBLE;
        ALTER TABLE analyses ADD COLUMN p_value DOUBLE;
        CREATE INDEX analyses_experiment ON analyses (experiment_id);
        CREATE INDEX experiments_created ON experiments (created_at);
    """),
    Migration(3, "large inputs kept as files next to the database (content NULL)", """
        ALTER TABLE inputs ALTER COLUMN content DROP NOT NULL;
    """),
    Migration(4, "users, the audit log, archived experiments and analysis authors", """
        CREATE SEQUENCE audit_event_ids START 1;
        CREATE TABLE users (
            name VARCHAR PRIMARY KEY,
            role VARCHAR NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
            password_hash VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp()
        );
        CREATE TABLE audit_events (
            id BIGINT PRIMARY KEY DEFAULT nextval('audit_event_ids'),
            occurred_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
            actor VARCHAR,
            event VARCHAR NOT NULL,
            experiment_id BIGINT,
            analysis_id BIGINT,
            target_user VARCHAR,
            detail VARCHAR
        );
        ALTER TABLE experiments ADD COLUMN archived_at TIMESTAMP;
        ALTER TABLE analyses ADD COLUMN author VARCHAR;
    """),
)


def latest_version() -> int:
    return MIGRATIONS[-1].version
