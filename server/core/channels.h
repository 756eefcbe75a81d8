/*
 * channels: names of the Redis pub/sub channels that tenantd and tenantctl both use, in one place
 * so the publisher and the subscribers cannot drift apart.
 */
#ifndef TENANTD_CORE_CHANNELS_H
#define TENANTD_CORE_CHANNELS_H

/* tenantctl migrate changed the tenant schemas: every tenantd worker reloads as on SIGHUP. */
#define CHANNEL_SCHEMA "tenantd:schema"

/* A tenant's status, roles or existence changed (message: its id): workers drop what they cached of it. */
#define CHANNEL_TENANTS "tenantd:tenants"

#endif
