"""Initial schema: WhatsApp channel, handoff requests, scheduling.

Revision ID: 0001_initial
Revises:
Create Date: 2025-03-24

Datetimes are ``DateTime(timezone=True)`` (the models" ``UTCDateTime`` stores UTC in it).
Migrations do not import application code: they must keep working when the models change.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

LEGACY_TABLES = ("handoff_requests", "wa_inbox", "wa_contacts", "wa_outbound", "wa_statuses")
SCHEDULING_TABLES = ("locations", "practitioners", "services", "practitioner_services",
                     "schedules", "slots", "patients", "appointments", "appointment_history")


def _exists(table: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    # Tables of the WhatsApp channel and handoff requests: databases created before
    # migrations existed (create_all) already have them, so they are created only if absent.
    if not _exists("handoff_requests"):
        op.create_table("handoff_requests",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("contact_key", sa.String(length=64), nullable=False),
            sa.Column("team", sa.String(length=16), nullable=False),
            sa.Column("reason", sa.String(length=32), nullable=False),
            sa.Column("priority", sa.String(length=16), nullable=False),
            sa.Column("red_flag_category", sa.String(length=64), nullable=True),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_requests"))
        )
        op.create_index(op.f("ix_handoff_requests_contact_key"), "handoff_requests", ["contact_key"], unique=False)

    if not _exists("wa_inbox"):
        op.create_table("wa_inbox",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("wamid", sa.String(length=191), nullable=False),
            sa.Column("conversation_id", sa.String(length=64), nullable=False),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("text", sa.Text(), nullable=True),
            sa.Column("metadata_json", sa.Text(), nullable=True),
            sa.Column("redacted", sa.String(length=64), nullable=True),
            sa.Column("state", sa.String(length=12), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("error", sa.String(length=200), nullable=True),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_wa_inbox")),
            sa.UniqueConstraint("wamid", name=op.f("uq_wa_inbox_wamid"))
        )
        op.create_index(op.f("ix_wa_inbox_conversation_id"), "wa_inbox", ["conversation_id"], unique=False)
        op.create_index(op.f("ix_wa_inbox_state"), "wa_inbox", ["state"], unique=False)

    if not _exists("wa_contacts"):
        op.create_table("wa_contacts",
            sa.Column("conversation_id", sa.String(length=64), nullable=False),
            sa.Column("address_encrypted", sa.Text(), nullable=False),
            sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_wa_contacts"))
        )

    if not _exists("wa_outbound"):
        op.create_table("wa_outbound",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("conversation_id", sa.String(length=64), nullable=False),
            sa.Column("wamid", sa.String(length=191), nullable=True),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("payload_json", sa.Text(), nullable=True),
            sa.Column("state", sa.String(length=12), nullable=False),
            sa.Column("error_code", sa.Integer(), nullable=True),
            sa.Column("error_detail", sa.String(length=300), nullable=True),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_wa_outbound")),
            sa.UniqueConstraint("wamid", name=op.f("uq_wa_outbound_wamid"))
        )
        op.create_index(op.f("ix_wa_outbound_conversation_id"), "wa_outbound", ["conversation_id"], unique=False)
        op.create_index(op.f("ix_wa_outbound_state"), "wa_outbound", ["state"], unique=False)

    if not _exists("wa_statuses"):
        op.create_table("wa_statuses",
            sa.Column("wamid", sa.String(length=191), nullable=False),
            sa.Column("status", sa.String(length=12), nullable=True),
            sa.Column("status_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("error_code", sa.Integer(), nullable=True),
            sa.Column("error_detail", sa.String(length=300), nullable=True),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("wamid", name=op.f("pk_wa_statuses"))
        )


    # Scheduling (FHIR R4 Location, Practitioner, HealthcareService, Schedule, Slot,
    # Patient, Appointment) and the appointment audit trail.

    op.create_table("locations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("directions", sa.Text(), nullable=False),
        sa.Column("parking", sa.Text(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_locations"))
    )

    op.create_table("practitioners",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("specialty", sa.String(length=100), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practitioners"))
    )

    op.create_table("services",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("specialty", sa.String(length=100), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("preparation", sa.Text(), nullable=False),
        sa.Column("synonyms", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.CheckConstraint("duration_minutes > 0", name=op.f("ck_services_duration_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services"))
    )

    op.create_table("practitioner_services",
        sa.Column("practitioner_id", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["practitioner_id"], ["practitioners.id"], name=op.f("fk_practitioner_services_practitioner_id_practitioners")),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], name=op.f("fk_practitioner_services_service_id_services")),
        sa.PrimaryKeyConstraint("practitioner_id", "service_id", name=op.f("pk_practitioner_services"))
    )
    op.create_index("ix_practitioner_services_service", "practitioner_services", ["service_id"], unique=False)

    op.create_table("schedules",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("practitioner_id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("planning_horizon_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("planning_horizon_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["location_id"], ["locations.id"], name=op.f("fk_schedules_location_id_locations")),
        sa.ForeignKeyConstraint(["practitioner_id"], ["practitioners.id"], name=op.f("fk_schedules_practitioner_id_practitioners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules"))
    )
    op.create_index("ix_schedules_practitioner_location", "schedules", ["practitioner_id", "location_id"], unique=False)

    op.create_table("slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.String(length=64), nullable=False),
        sa.Column("practitioner_id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("local_minute", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('free', 'busy', 'busy-unavailable', 'busy-tentative', 'entered-in-error')", name=op.f("ck_slots_status_valid")),
        sa.CheckConstraint("minutes > 0", name=op.f("ck_slots_minutes_positive")),
        sa.ForeignKeyConstraint(["location_id"], ["locations.id"], name=op.f("fk_slots_location_id_locations")),
        sa.ForeignKeyConstraint(["practitioner_id"], ["practitioners.id"], name=op.f("fk_slots_practitioner_id_practitioners")),
        sa.ForeignKeyConstraint(["schedule_id"], ["schedules.id"], name=op.f("fk_slots_schedule_id_schedules")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slots"))
    )
    op.create_index("ix_slots_schedule", "slots", ["schedule_id"], unique=False)
    op.create_index("ix_slots_status_start", "slots", ["status", "start"], unique=False)
    op.create_index("uq_slots_practitioner_start", "slots", ["practitioner_id", "start"], unique=True)

    op.create_table("patients",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("contact_key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("contact_key", name=op.f("uq_patients_contact_key"))
    )

    op.create_table("appointments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=32), nullable=False),
        sa.Column("practitioner_id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancellation_reason", sa.String(length=200), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('proposed', 'pending', 'booked', 'arrived', 'fulfilled', 'cancelled', 'noshow', 'entered-in-error', 'checked-in', 'waitlist')", name=op.f("ck_appointments_status_valid")),
        sa.ForeignKeyConstraint(["location_id"], ["locations.id"], name=op.f("fk_appointments_location_id_locations")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_appointments_patient_id_patients")),
        sa.ForeignKeyConstraint(["practitioner_id"], ["practitioners.id"], name=op.f("fk_appointments_practitioner_id_practitioners")),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], name=op.f("fk_appointments_service_id_services")),
        sa.ForeignKeyConstraint(["slot_id"], ["slots.id"], name=op.f("fk_appointments_slot_id_slots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments"))
    )
    op.create_index("ix_appointments_patient_start", "appointments", ["patient_id", "start"], unique=False)
    op.create_index("ix_appointments_start", "appointments", ["start"], unique=False)
    # At most one appointment holds a slot (partial unique index: no double booking).
    holds_slot = sa.text("status NOT IN ('cancelled', 'entered-in-error')")
    op.create_index("uq_appointments_slot_holding", "appointments", ["slot_id"], unique=True,
                    sqlite_where=holds_slot, postgresql_where=holds_slot)

    op.create_table("appointment_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointments.id"], name=op.f("fk_appointment_history_appointment_id_appointments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_history"))
    )
    op.create_index("ix_appointment_history_appointment", "appointment_history", ["appointment_id", "id"], unique=False)


def downgrade() -> None:
    # Reverse dependency order; dropping a table drops its indexes.
    for table in reversed(LEGACY_TABLES + SCHEDULING_TABLES):
        op.drop_table(table)
