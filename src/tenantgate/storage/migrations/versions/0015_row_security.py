"""PostgreSQL row-level security on every table that holds a tenant's rows: a second wall behind
the `tenant_id` every query names. The gateway acts as the role `tenantgate_app` and says, per
transaction, whose rows it may touch (`tenantgate.scope`: a tenant id, or `*` for work across
tenants); a query that says nothing sees nothing. SQLite has no row security: nothing to do.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TENANT_TABLES = ("users", "api_keys", "usage_events", "usage_rollups", "notifications", "credit_grants", "invoices",
                 "credit_applications", "credit_notes", "tenant_webhooks", "management_tokens", "tenant_sso",
                 "tenant_proxy_keys", "audit_events")  # fmt: skip
ROLE = "tenantgate_app"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Roles and their members belong to the whole server: another database's migration may have made
    # them already, or be making them at this moment (the loser of that race hears unique_violation).
    # A database user that may not create roles leaves it to its administrator (start-up says what to do).
    op.execute(f"""DO $$ BEGIN
        BEGIN CREATE ROLE {ROLE} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; WHEN insufficient_privilege THEN RETURN; END;
        BEGIN EXECUTE format('GRANT {ROLE} TO %I', current_user);
        EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation OR unique_violation THEN NULL; END;
        GRANT USAGE ON SCHEMA public TO {ROLE};
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE};
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ROLE};
    END $$""")
    op.execute("""CREATE FUNCTION tenantgate_visible(tenant text) RETURNS boolean LANGUAGE sql STABLE AS $$
                  SELECT current_setting('tenantgate.scope', true) = '*'
                      OR tenant = current_setting('tenantgate.scope', true) $$""")
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_wall ON {table} USING (tenantgate_visible(tenant_id)) "
                   "WITH CHECK (tenantgate_visible(tenant_id))")  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY tenant_wall ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION tenantgate_visible(text)")
