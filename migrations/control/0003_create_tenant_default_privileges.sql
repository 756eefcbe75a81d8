-- create_tenant() without its two `GRANT ... ON ALL TABLES|SEQUENCES IN SCHEMA` statements.
-- They were redundant: the function sets the schema's default privileges for the role that runs
-- the migrations (its owner, SECURITY DEFINER), so every table and sequence they create already
-- gives the tenant role the same rights. And they were expensive: Postgres finds "all tables in
-- schema" by scanning the whole of pg_class, so each new tenant paid for every relation of every
-- existing tenant (measured with ~1,200 tenants: 12–18 ms per create_tenant with them, 6–7 ms
-- without; tests/bench/README.md). Same signature, owner and EXECUTE grants (CREATE OR REPLACE).

CREATE OR REPLACE FUNCTION create_tenant(p_slug text, p_name text, OUT tenant_id uuid, OUT schema_name text)
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
    -- The tables and sequences above got the role's rights from the default privileges.
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', v_schema, v_schema);
    SELECT s.value INTO v_app FROM tenantd.settings s WHERE s.key = 'app_role';
    IF v_app IS NOT NULL THEN
        EXECUTE format('GRANT %I TO %I', v_schema, v_app);
    END IF;
    tenant_id := v_id;
    schema_name := v_schema;
END
$fn$;
