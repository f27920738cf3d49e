"""On PostgreSQL the audit trail refuses UPDATE and DELETE at the database itself, not only in the ORM."""

from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION members_auditevent_forbid_change() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS members_auditevent_append_only ON members_auditevent;
CREATE TRIGGER members_auditevent_append_only BEFORE UPDATE OR DELETE ON members_auditevent
  FOR EACH ROW EXECUTE FUNCTION members_auditevent_forbid_change();
"""
ALLOW = """
DROP TRIGGER IF EXISTS members_auditevent_append_only ON members_auditevent;
DROP FUNCTION IF EXISTS members_auditevent_forbid_change();
"""
# TRUNCATE stays possible so test databases can be flushed; it needs table ownership, which the app role
# should not have in production (see deploy/README.md).


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORBID)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ALLOW)


class Migration(migrations.Migration):
    dependencies = [("members", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
