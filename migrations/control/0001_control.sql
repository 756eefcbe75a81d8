-- Control plane of tenantd (schema `tenantd`): tenants, users, memberships, custom roles,
-- invitations, API keys, the audit log, the released tenant migration set and the provisioning
-- functions the server calls. Run by `tenantctl migrate` with search_path set to the control
-- schema, so table names here are unqualified; function bodies name `tenantd.` explicitly because
-- they run with a fixed search_path. The migration ledger `schema_migrations` is created by
-- tenantctl itself before the first migration (it has to exist to record this one).
-- Grants for the server's login role are applied by tenantctl after the control migrations
-- (the role name comes from DATABASE_URL and is quoted there), not here.

CREATE TABLE tenants (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text        NOT NULL UNIQUE CHECK (slug ~ '^[a-z][a-z0-9-]{1,62}$'),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    schema_name text        NOT NULL UNIQUE CHECK (schema_name ~ '^t_[0-9a-f]{32}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- E-mail addresses are stored lowercased (checked), so equality is case-insensitive without citext.
CREATE TABLE users (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email             text        NOT NULL UNIQUE
                                  CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254
                                         AND position('@' IN email) > 1),
    password_hash     text,
    is_platform_admin boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    tenant_id uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id   uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    roles     text[]      NOT NULL DEFAULT '{}',
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user_id_idx ON memberships (user_id);

-- Custom roles a tenant admin defines; the default roles come from policies/.
CREATE TABLE roles (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    permissions text[]      NOT NULL DEFAULT '{}',
    inherits    text[]      NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE invitations (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       text        NOT NULL CHECK (email = lower(email)),
    roles       text[]      NOT NULL DEFAULT '{}',
    token_hash  text        NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    revoked_at  timestamptz,
    created_by  uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invitations_tenant_id_idx ON invitations (tenant_id, created_at);

CREATE TABLE api_keys (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix       text        NOT NULL UNIQUE,
    key_hash     text        NOT NULL,
    roles        text[]      NOT NULL DEFAULT '{}',
    expires_at   timestamptz,
    revoked_at   timestamptz,
    created_by   uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX api_keys_tenant_id_idx ON api_keys (tenant_id);

-- Append-only: the server's role gets INSERT and SELECT only. No foreign key to tenants, so the
-- history of a dropped tenant stays.
CREATE TABLE audit_log (
    id         bigserial   PRIMARY KEY,
    tenant_id  uuid,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text,
    action     text        NOT NULL,
    target     text,
    ip         text,
    request_id text,
    detail     jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_tenant_id_idx ON audit_log (tenant_id, id DESC);

-- Key/value settings written by tenantctl; `app_role` is the server's login role, to which
-- create_tenant() grants each new tenant role.
CREATE TABLE settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- The released tenant migration set: tenantctl copies migrations/tenant/*.sql here (refusing an
-- edit of a stored version), and create_tenant() applies it to every new schema.
CREATE TABLE tenant_migrations (
    version  integer     PRIMARY KEY CHECK (version BETWEEN 1 AND 9999),
    name     text        NOT NULL,
    checksum text        NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    sql      text        NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now()
);

-- Creates a tenant atomically (within the caller's transaction): its row, its NOLOGIN role and
-- schema (both named t_<uuid hex>), every released tenant migration (recorded in
-- schema_migrations), the role's grants, and membership of the server's role in it.
-- Raises 22023 on a bad slug, 23505 (unique_violation) when the slug is taken.
CREATE FUNCTION create_tenant(p_slug text, p_name text, OUT tenant_id uuid, OUT schema_name text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_id     uuid := gen_random_uuid();
    v_schema text;
    v_app    text;
    v_start  timestamptz;
    m        record;
BEGIN
    IF p_slug IS NULL OR p_slug !~ '^[a-z][a-z0-9-]{1,62}$' THEN
        RAISE EXCEPTION 'invalid slug: use 2 to 63 characters a-z, 0-9 and -, starting with a letter'
            USING ERRCODE = '22023';
    END IF;
    IF p_name IS NULL OR length(p_name) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'invalid name: 1 to 200 characters' USING ERRCODE = '22023';
    END IF;
    v_schema := 't_' || replace(v_id::text, '-', '');
    INSERT INTO tenantd.tenants (id, slug, name, schema_name) VALUES (v_id, p_slug, p_name, v_schema);
    EXECUTE format('CREATE ROLE %I NOLOGIN', v_schema);
    EXECUTE format('CREATE SCHEMA %I', v_schema);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I',
                   v_schema, v_schema);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I',
                   v_schema, v_schema);
    FOR m IN SELECT t.version, t.name, t.checksum, t.sql FROM tenantd.tenant_migrations t ORDER BY t.version LOOP
        v_start := clock_timestamp();
        PERFORM set_config('search_path', quote_ident(v_schema), true);
        EXECUTE m.sql;
        PERFORM set_config('search_path', 'pg_catalog, pg_temp', true);
        INSERT INTO tenantd.schema_migrations (schema_name, version, name, checksum, duration_ms)
        VALUES (v_schema, m.version, m.name, m.checksum,
                (extract(epoch FROM clock_timestamp() - v_start) * 1000)::integer);
    END LOOP;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', v_schema, v_schema);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', v_schema, v_schema);
    EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO %I', v_schema, v_schema);
    SELECT s.value INTO v_app FROM tenantd.settings s WHERE s.key = 'app_role';
    IF v_app IS NOT NULL THEN
        EXECUTE format('GRANT %I TO %I', v_schema, v_app);
    END IF;
    tenant_id := v_id;
    schema_name := v_schema;
END
$fn$;

-- Drops a tenant (its row and everything cascading from it, its schema with all data, its role,
-- its migration records); returns false when no tenant has that slug.
CREATE FUNCTION drop_tenant(p_slug text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_schema text;
BEGIN
    DELETE FROM tenantd.tenants t WHERE t.slug = p_slug RETURNING t.schema_name INTO v_schema;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM tenantd.schema_migrations sm WHERE sm.schema_name = v_schema;
    EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', v_schema);
    IF EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = v_schema) THEN
        EXECUTE format('DROP ROLE %I', v_schema);
    END IF;
    RETURN true;
END
$fn$;

REVOKE ALL ON FUNCTION create_tenant(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION drop_tenant(text) FROM PUBLIC;
