-- Sample application of every tenant: an orders board and per-user notifications.
-- Tenant migrations are written unqualified: tenantctl (and tenantd.create_tenant) run them with
-- search_path set to the tenant's own schema, inside one transaction per migration, as the schema
-- owner; the tenant role's grants are applied afterwards. Do not put BEGIN/COMMIT in these files.
-- updated_at is set by the writer (the data API sets it on PATCH).

CREATE TABLE orders (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    title       text        NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    status      text        NOT NULL DEFAULT 'open'
                            CHECK (status IN ('open', 'in_progress', 'done', 'archived')),
    position    integer     NOT NULL DEFAULT 0,
    owner_id    uuid,
    assignee_id uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- The board shows a column per status ordered by position; members filter by owner or assignee.
CREATE INDEX orders_status_position_idx ON orders (status, position);
CREATE INDEX orders_owner_id_idx ON orders (owner_id);
CREATE INDEX orders_assignee_id_idx ON orders (assignee_id);
CREATE INDEX orders_created_at_idx ON orders (created_at DESC);

CREATE TABLE notifications (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL,
    kind       text        NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
    payload    jsonb       NOT NULL DEFAULT '{}',
    read_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_user_id_created_at_idx ON notifications (user_id, created_at DESC);
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;
