-- schema/control.sql: the control schema `tenantd` (ledger included).
-- Written by `tenantctl schema dump` from the catalog after applying migrations/control (not pg_dump):
-- names unqualified, objects sorted by name. Do not edit; a test compares it with a fresh dump.
-- Migrations: 0001_control.sql 0002_tenant_notify.sql 0003_create_tenant_default_privileges.sql

CREATE SEQUENCE audit_log_id_seq AS bigint;

CREATE TABLE api_keys (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    prefix text NOT NULL,
    key_hash text NOT NULL,
    roles text[] NOT NULL DEFAULT '{}'::text[],
    expires_at timestamp with time zone,
    revoked_at timestamp with time zone,
    created_by uuid,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    last_used_at timestamp with time zone
);

ALTER TABLE api_keys ADD CONSTRAINT api_keys_created_by_fkey FOREIGN KEY (created_by) REFERENCES users(id) ON DELETE SET NULL;

ALTER TABLE api_keys ADD CONSTRAINT api_keys_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)));

ALTER TABLE api_keys ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);

ALTER TABLE api_keys ADD CONSTRAINT api_keys_prefix_key UNIQUE (prefix);

ALTER TABLE api_keys ADD CONSTRAINT api_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;

CREATE INDEX api_keys_tenant_id_idx ON api_keys USING btree (tenant_id);

CREATE TABLE audit_log (
    id bigint NOT NULL DEFAULT nextval('audit_log_id_seq'::regclass),
    tenant_id uuid,
    at timestamp with time zone NOT NULL DEFAULT now(),
    actor text,
    action text NOT NULL,
    target text,
    ip text,
    request_id text,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb
);

ALTER TABLE audit_log ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);

CREATE INDEX audit_log_tenant_id_idx ON audit_log USING btree (tenant_id, id DESC);

CREATE TABLE invitations (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    email text NOT NULL,
    roles text[] NOT NULL DEFAULT '{}'::text[],
    token_hash text NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    accepted_at timestamp with time zone,
    revoked_at timestamp with time zone,
    created_by uuid,
    created_at timestamp with time zone NOT NULL DEFAULT now()
);

ALTER TABLE invitations ADD CONSTRAINT invitations_created_by_fkey FOREIGN KEY (created_by) REFERENCES users(id) ON DELETE SET NULL;

ALTER TABLE invitations ADD CONSTRAINT invitations_email_check CHECK ((email = lower(email)));

ALTER TABLE invitations ADD CONSTRAINT invitations_pkey PRIMARY KEY (id);

ALTER TABLE invitations ADD CONSTRAINT invitations_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;

ALTER TABLE invitations ADD CONSTRAINT invitations_token_hash_key UNIQUE (token_hash);

CREATE INDEX invitations_tenant_id_idx ON invitations USING btree (tenant_id, created_at);

CREATE TABLE memberships (
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    roles text[] NOT NULL DEFAULT '{}'::text[],
    joined_at timestamp with time zone NOT NULL DEFAULT now()
);

ALTER TABLE memberships ADD CONSTRAINT memberships_pkey PRIMARY KEY (tenant_id, user_id);

ALTER TABLE memberships ADD CONSTRAINT memberships_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;

ALTER TABLE memberships ADD CONSTRAINT memberships_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE;

CREATE INDEX memberships_user_id_idx ON memberships USING btree (user_id);

CREATE TABLE roles (
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    permissions text[] NOT NULL DEFAULT '{}'::text[],
    inherits text[] NOT NULL DEFAULT '{}'::text[],
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);

ALTER TABLE roles ADD CONSTRAINT roles_name_check CHECK ((name ~ '^[a-z][a-z0-9_-]{0,62}$'::text));

ALTER TABLE roles ADD CONSTRAINT roles_pkey PRIMARY KEY (tenant_id, name);

ALTER TABLE roles ADD CONSTRAINT roles_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE;

CREATE TABLE schema_migrations (
    schema_name text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL DEFAULT 0
);

ALTER TABLE schema_migrations ADD CONSTRAINT schema_migrations_checksum_check CHECK ((checksum ~ '^[0-9a-f]{64}$'::text));

ALTER TABLE schema_migrations ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (schema_name, version);

ALTER TABLE schema_migrations ADD CONSTRAINT schema_migrations_version_check CHECK (((version >= 1) AND (version <= 9999)));

CREATE TABLE settings (
    key text NOT NULL,
    value text NOT NULL
);

ALTER TABLE settings ADD CONSTRAINT settings_pkey PRIMARY KEY (key);

CREATE TABLE tenant_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    sql text NOT NULL,
    added_at timestamp with time zone NOT NULL DEFAULT now()
);

ALTER TABLE tenant_migrations ADD CONSTRAINT tenant_migrations_checksum_check CHECK ((checksum ~ '^[0-9a-f]{64}$'::text));

ALTER TABLE tenant_migrations ADD CONSTRAINT tenant_migrations_pkey PRIMARY KEY (version);

ALTER TABLE tenant_migrations ADD CONSTRAINT tenant_migrations_version_check CHECK (((version >= 1) AND (version <= 9999)));

CREATE TABLE tenants (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    slug text NOT NULL,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'active'::text,
    schema_name text NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);

ALTER TABLE tenants ADD CONSTRAINT tenants_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)));

ALTER TABLE tenants ADD CONSTRAINT tenants_pkey PRIMARY KEY (id);

ALTER TABLE tenants ADD CONSTRAINT tenants_schema_name_check CHECK ((schema_name ~ '^t_[0-9a-f]{32}$'::text));

ALTER TABLE tenants ADD CONSTRAINT tenants_schema_name_key UNIQUE (schema_name);

ALTER TABLE tenants ADD CONSTRAINT tenants_slug_check CHECK ((slug ~ '^[a-z][a-z0-9-]{1,62}$'::text));

ALTER TABLE tenants ADD CONSTRAINT tenants_slug_key UNIQUE (slug);

ALTER TABLE tenants ADD CONSTRAINT tenants_status_check CHECK ((status = ANY (ARRAY['active'::text, 'suspended'::text])));

CREATE TRIGGER tenants_notify AFTER DELETE OR UPDATE ON tenants FOR EACH ROW EXECUTE FUNCTION notify_tenant_change();

CREATE TABLE users (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    email text NOT NULL,
    password_hash text,
    is_platform_admin boolean NOT NULL DEFAULT false,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);

ALTER TABLE users ADD CONSTRAINT users_email_check CHECK (((email = lower(email)) AND ((length(email) >= 3) AND (length(email) <= 254)) AND (POSITION(('@'::text) IN (email)) > 1)));

ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);

ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY (id);

CREATE OR REPLACE FUNCTION create_tenant(p_slug text, p_name text, OUT tenant_id uuid, OUT schema_name text)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
    -- The tables and sequences above got the role's rights from the default privileges.
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', v_schema, v_schema);
    SELECT s.value INTO v_app FROM tenantd.settings s WHERE s.key = 'app_role';
    IF v_app IS NOT NULL THEN
        EXECUTE format('GRANT %I TO %I', v_schema, v_app);
    END IF;
    tenant_id := v_id;
    schema_name := v_schema;
END
$function$;

CREATE OR REPLACE FUNCTION drop_tenant(p_slug text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION notify_tenant_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tenantd_tenants',
            json_build_object('op', 'delete', 'id', OLD.id, 'slug', OLD.slug, 'status', OLD.status)::text);
        RETURN OLD;
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status OR NEW.slug IS DISTINCT FROM OLD.slug
       OR NEW.name IS DISTINCT FROM OLD.name THEN
        PERFORM pg_notify('tenantd_tenants',
            json_build_object('op', 'update', 'id', NEW.id, 'slug', NEW.slug, 'status', NEW.status)::text);
    END IF;
    RETURN NEW;
END
$function$;
