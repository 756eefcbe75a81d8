-- schema/tenant.sql: every tenant schema t_<uuid hex>.
-- Written by `tenantctl schema dump` from the catalog after applying migrations/tenant (not pg_dump):
-- names unqualified, objects sorted by name. Do not edit; a test compares it with a fresh dump.
-- Migrations: 0001_orders_board.sql

CREATE TABLE notifications (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    read_at timestamp with time zone,
    created_at timestamp with time zone NOT NULL DEFAULT now()
);

ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (((length(kind) >= 1) AND (length(kind) <= 100)));

ALTER TABLE notifications ADD CONSTRAINT notifications_pkey PRIMARY KEY (id);

CREATE INDEX notifications_unread_idx ON notifications USING btree (user_id) WHERE (read_at IS NULL);

CREATE INDEX notifications_user_id_created_at_idx ON notifications USING btree (user_id, created_at DESC);

CREATE TABLE orders (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    title text NOT NULL,
    status text NOT NULL DEFAULT 'open'::text,
    "position" integer NOT NULL DEFAULT 0,
    owner_id uuid,
    assignee_id uuid,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);

ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY (id);

ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK ((status = ANY (ARRAY['open'::text, 'in_progress'::text, 'done'::text, 'archived'::text])));

ALTER TABLE orders ADD CONSTRAINT orders_title_check CHECK (((length(title) >= 1) AND (length(title) <= 500)));

CREATE INDEX orders_assignee_id_idx ON orders USING btree (assignee_id);

CREATE INDEX orders_created_at_idx ON orders USING btree (created_at DESC);

CREATE INDEX orders_owner_id_idx ON orders USING btree (owner_id);

CREATE INDEX orders_status_position_idx ON orders USING btree (status, "position");
