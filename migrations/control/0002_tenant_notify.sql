-- Tells running servers when a tenant changes, whoever changed it (tenantctl, the platform API,
-- an operator in psql): after a commit that suspends, resumes, renames or deletes a tenant,
-- Postgres delivers NOTIFY on channel `tenantd_tenants` with the JSON payload
-- {"op": "update"|"delete", "id": <uuid>, "slug": ..., "status": ...}. A server instance LISTENs
-- (no privilege needed) and drops its cached tenant, or relays the event over Redis.

CREATE FUNCTION notify_tenant_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;

CREATE TRIGGER tenants_notify AFTER UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_change();
