/**
 * The Postgres schema, as migrations in code. They run at start, under an
 * advisory lock so that several nodes starting together migrate once.
 *
 * The audit log is append-only (a trigger refuses UPDATE and DELETE) and each
 * row carries the SHA-256 of the previous row of its tenant, so any change to
 * history breaks the chain (`concord audit verify`).
 */
import { Effect } from "effect"
import { Migrator, SqlClient } from "effect/sql"

const initial: ReadonlyArray<string> = [
  `CREATE TABLE tenants (
        id text PRIMARY KEY,
        name text,
        config jsonb NOT NULL,
        config_yaml text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`,
  `CREATE TABLE api_keys (
        id text PRIMARY KEY,
        tenant_id text REFERENCES tenants(id) ON DELETE CASCADE,
        role text NOT NULL CHECK (role IN ('tenant', 'admin')),
        secret_hash text NOT NULL,
        label text,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz,
        CHECK ((role = 'admin') = (tenant_id IS NULL))
      )`,
  `CREATE TABLE connections (
        id text PRIMARY KEY,
        tenant_id text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        provider text NOT NULL,
        account_id text,
        base_url text,
        status text NOT NULL DEFAULT 'pending_auth'
          CHECK (status IN ('pending_auth', 'active', 'paused', 'needs_reauth')),
        status_reason text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`,
  `CREATE INDEX connections_tenant ON connections (tenant_id)`,
  `-- AES-256-GCM sealed token sets; key_id names the key so keys can rotate.
      CREATE TABLE credentials (
        connection_id text PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
        key_id text NOT NULL,
        nonce bytea NOT NULL,
        ciphertext bytea NOT NULL,
        auth_tag bytea NOT NULL,
        access_expires_at timestamptz NOT NULL,
        refresh_expires_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`,
  `CREATE TABLE oauth_states (
        state text PRIMARY KEY,
        connection_id text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now()
      )`,
  `-- The app's side: the current state of every record the app owns or pulled.
      CREATE TABLE records (
        tenant_id text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        entity text NOT NULL,
        record_id text NOT NULL,
        data jsonb NOT NULL,
        hash text NOT NULL,
        deleted boolean NOT NULL DEFAULT false,
        app_seq bigint NOT NULL DEFAULT 0,
        origin text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, entity, record_id)
      )`,
  `-- Record ↔ external id per connection, with the provider's version.
      CREATE TABLE links (
        connection_id text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
        entity text NOT NULL,
        record_id text NOT NULL,
        external_id text NOT NULL,
        provider_version text NOT NULL,
        provider_hash text,
        provider_deleted boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (connection_id, entity, record_id),
        UNIQUE (connection_id, entity, external_id)
      )`,
  `-- The last state both sides agreed on (the projection both can store).
      CREATE TABLE bases (
        connection_id text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
        entity text NOT NULL,
        record_id text NOT NULL,
        data jsonb NOT NULL,
        hash text NOT NULL,
        version integer NOT NULL DEFAULT 1,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (connection_id, entity, record_id)
      )`,
  `CREATE TABLE sync_state (
        connection_id text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
        entity text NOT NULL,
        record_id text NOT NULL,
        status text NOT NULL CHECK (status IN ('synced', 'conflict', 'error', 'skipped')),
        last_error jsonb,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (connection_id, entity, record_id)
      )`,
  `CREATE TABLE sync_cursors (
        connection_id text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
        name text NOT NULL,
        cursor text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (connection_id, name)
      )`,
  `CREATE TABLE conflicts (
        id text PRIMARY KEY,
        tenant_id text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        connection_id text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
        entity text NOT NULL,
        record_id text NOT NULL,
        path text NOT NULL,
        segments jsonb NOT NULL,
        base jsonb,
        app jsonb,
        provider jsonb,
        status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'superseded')),
        resolution text CHECK (resolution IN ('app', 'provider', 'merged')),
        resolved_value jsonb,
        resolved_by text,
        opened_at timestamptz NOT NULL DEFAULT now(),
        resolved_at timestamptz
      )`,
  `CREATE UNIQUE INDEX conflicts_open ON conflicts (connection_id, entity, record_id, path) WHERE status = 'open'`,
  `CREATE INDEX conflicts_tenant ON conflicts (tenant_id, status, opened_at)`,
  `CREATE TABLE audit_log (
        tenant_id text NOT NULL,
        seq bigint NOT NULL,
        at timestamptz NOT NULL,
        connection_id text,
        entity text,
        record_id text,
        action text NOT NULL,
        actor text NOT NULL,
        correlation_id text,
        detail jsonb NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL,
        PRIMARY KEY (tenant_id, seq)
      )`,
  `CREATE INDEX audit_record ON audit_log (tenant_id, entity, record_id)`,
  `CREATE TABLE audit_heads (
        tenant_id text PRIMARY KEY,
        seq bigint NOT NULL,
        hash text NOT NULL
      )`,
  `CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
      END $$`,
  `CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()`,
  `-- Provider writes by idempotency key: a replayed write is recognised.
      CREATE TABLE idempotency (
        key text PRIMARY KEY,
        connection_id text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
        entity text NOT NULL,
        record_id text NOT NULL,
        operation text NOT NULL,
        external_id text,
        provider_version text,
        created_at timestamptz NOT NULL DEFAULT now()
      )`,
  `CREATE TABLE outbox (
        id bigserial PRIMARY KEY,
        subject text NOT NULL,
        payload jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
      )`,
  `CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL`,
  `CREATE TABLE operations (
        id text PRIMARY KEY,
        tenant_id text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        kind text NOT NULL,
        status text NOT NULL CHECK (status IN ('accepted', 'succeeded', 'failed', 'conflict')),
        expected integer NOT NULL,
        done integer NOT NULL DEFAULT 0,
        failed integer NOT NULL DEFAULT 0,
        detail jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`,
  `CREATE TABLE operation_items (
        operation_id text NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        connection_id text NOT NULL,
        entity text NOT NULL,
        record_id text NOT NULL,
        status text NOT NULL CHECK (status IN ('succeeded', 'failed', 'conflict')),
        detail jsonb,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (operation_id, connection_id, entity, record_id)
      )`
]

const m0001 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // One statement per query: the extended protocol takes a single command.
  for (const statement of initial) yield* sql.unsafe(statement)
})

/** Work that arrived while a connection was paused or needed re-authorisation; replayed on resume. */
const m0002 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE parked (
      connection_id text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
      entity text NOT NULL,
      key text NOT NULL,
      record_id text,
      external_id text,
      parked_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (connection_id, entity, key)
    )`
})

/** Webhook deliveries already received (replays answered without publishing again). */
const m0003 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE webhook_receipts (
      hash text PRIMARY KEY,
      provider text NOT NULL,
      received_at timestamptz NOT NULL DEFAULT now()
    )`
})

/** Parked work remembers the operations waiting for it. */
const m0004 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE parked ADD COLUMN operation_ids jsonb NOT NULL DEFAULT '[]'`
})

/** Links remember when the provider last changed the record (echoes of our own writes need no read). */
const m0005 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE links ADD COLUMN provider_updated_at timestamptz`
})

/** A create remembers the request it went out in, so a retry replays exactly that request. */
const m0006 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE idempotency ADD COLUMN batch_key text, ADD COLUMN position integer, ADD COLUMN payload jsonb`
  yield* sql`CREATE INDEX idempotency_batch ON idempotency (connection_id, batch_key) WHERE batch_key IS NOT NULL`
})

/** Each polled connection's cadence (adaptive interval, due times, last poll), kept across restarts. */
const m0008 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE poll_state (
      connection_id text PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
      interval_ms integer NOT NULL,
      next_poll_at timestamptz,
      next_safety_at timestamptz,
      last_poll_at timestamptz,
      last_changes integer,
      last_error text,
      polls bigint NOT NULL DEFAULT 0,
      started_at timestamptz NOT NULL DEFAULT now(),
      claimed_until timestamptz,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`
})

/** Resumable history imports, one row per connection and entity: cursor and counters commit with each page. */
const m0009 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE backfills (
      id text PRIMARY KEY,
      tenant_id text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
      connection_id text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
      entity text NOT NULL,
      status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
      since timestamptz,
      page_size integer NOT NULL,
      cursor text,
      pages integer NOT NULL DEFAULT 0,
      done bigint NOT NULL DEFAULT 0,
      imported bigint NOT NULL DEFAULT 0,
      skipped bigint NOT NULL DEFAULT 0,
      failed bigint NOT NULL DEFAULT 0,
      total bigint,
      rate double precision,
      error text,
      started_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      finished_at timestamptz
    )`
  yield* sql`CREATE INDEX backfills_tenant ON backfills (tenant_id, started_at)`
  yield* sql`CREATE UNIQUE INDEX backfills_running ON backfills (connection_id, entity) WHERE status = 'running'`
})

/**
 * A create's answer can be a refusal (no record): it is answered all the same, and must neither be replayed
 * nor keep provider records of its entity waiting as if it might be their origin. Unanswered creates are
 * looked up by record (a retry of a changed record has another key).
 */
const m0010 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE idempotency ADD COLUMN answered_at timestamptz`
  yield* sql`UPDATE idempotency SET answered_at = created_at WHERE external_id IS NOT NULL`
  yield* sql`CREATE INDEX idempotency_unanswered ON idempotency (connection_id, entity, record_id) WHERE batch_key IS NOT NULL AND answered_at IS NULL`
})

/**
 * Full-state reconciliation: one `drift_runs` row per run (at most one running per connection),
 * its `drift_items`, the provider ids a run has seen (`drift_seen`, emptied when the run ends),
 * each connection's next scheduled run, and `drift_report`, the read view for people using psql.
 */
const m0011 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE drift_runs (
      id text PRIMARY KEY,
      tenant_id text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
      connection_id text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
      provider text NOT NULL,
      trigger text NOT NULL CHECK (trigger IN ('scheduled', 'manual')),
      requested_by text NOT NULL,
      status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
      entities jsonb NOT NULL,
      phase text,
      provider_records bigint NOT NULL DEFAULT 0,
      app_records bigint NOT NULL DEFAULT 0,
      missing_in_provider integer NOT NULL DEFAULT 0,
      missing_in_app integer NOT NULL DEFAULT 0,
      field_mismatch integer NOT NULL DEFAULT 0,
      duplicate_in_provider integer NOT NULL DEFAULT 0,
      unbalanced integer NOT NULL DEFAULT 0,
      orphan_link integer NOT NULL DEFAULT 0,
      explained integer NOT NULL DEFAULT 0,
      resolved integer NOT NULL DEFAULT 0,
      error text,
      started_at timestamptz NOT NULL DEFAULT now(),
      heartbeat_at timestamptz NOT NULL DEFAULT now(),
      finished_at timestamptz
    )`
  yield* sql`CREATE INDEX drift_runs_tenant ON drift_runs (tenant_id, started_at DESC)`
  yield* sql`CREATE UNIQUE INDEX drift_runs_running ON drift_runs (connection_id) WHERE status = 'running'`
  yield* sql`
    CREATE TABLE drift_items (
      id bigserial PRIMARY KEY,
      run_id text NOT NULL REFERENCES drift_runs(id) ON DELETE CASCADE,
      entity text NOT NULL,
      record_id text,
      external_id text,
      kind text NOT NULL CHECK (kind IN ('missing_in_provider', 'missing_in_app', 'field_mismatch', 'duplicate_in_provider', 'unbalanced', 'orphan_link')),
      fields jsonb NOT NULL DEFAULT '[]',
      detail jsonb,
      resolution text CHECK (resolution IN ('repush', 'pull', 'conflict', 'review')),
      resolved_at timestamptz
    )`
  yield* sql`CREATE INDEX drift_items_run ON drift_items (run_id, id)`
  yield* sql`
    CREATE UNLOGGED TABLE drift_seen (
      run_id text NOT NULL,
      entity text NOT NULL,
      external_id text NOT NULL,
      PRIMARY KEY (run_id, entity, external_id)
    )`
  yield* sql`
    CREATE TABLE drift_schedule (
      connection_id text PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
      schedule text NOT NULL,
      next_run_at timestamptz NOT NULL
    )`
  yield* sql`
    CREATE VIEW drift_report AS
      SELECT r.id AS run_id, r.tenant_id, r.connection_id, r.provider, r.trigger, r.status AS run_status,
        r.started_at, r.finished_at, i.id AS item_id, i.entity, i.record_id, i.external_id, i.kind,
        i.fields, i.detail, i.resolution, i.resolved_at
      FROM drift_runs r JOIN drift_items i ON i.run_id = r.id`
})

/** Reconciliation runs are resumable workflows: each run's committed checkpoint, and items unique per record and kind. */
const m0012 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    ALTER TABLE drift_runs
      ADD COLUMN stage text NOT NULL DEFAULT 'provider' CHECK (stage IN ('provider', 'app', 'settle', 'resolve', 'done')),
      ADD COLUMN entity_index integer NOT NULL DEFAULT 0,
      ADD COLUMN cursor text,
      ADD COLUMN steps integer NOT NULL DEFAULT 0,
      ADD COLUMN checkpoint_records bigint NOT NULL DEFAULT 0`
  yield* sql`CREATE UNIQUE INDEX drift_items_once ON drift_items (run_id, entity, kind, (coalesce(record_id, '')), (coalesce(external_id, '')))`
})

/**
 * A record's natural key (document number; contact, item, tax rate and tracking category name; account and
 * currency code, else name), trimmed and in lower case, as `Drift.naturalKey` computes it; records are indexed
 * on it so a reconciliation finds the app record a provider duplicate duplicates without scanning the entity.
 */
const m0013 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE FUNCTION concord_natural_key(entity text, data jsonb) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT nullif(lower(btrim(CASE
        WHEN entity IN ('invoice', 'bill', 'credit_note', 'vendor_credit', 'sales_receipt', 'journal_entry', 'refund', 'expense', 'deposit')
          THEN data->>'number'
        WHEN entity IN ('contact', 'item', 'tax_rate', 'tracking_category') THEN data->>'name'
        WHEN entity IN ('account', 'currency') THEN coalesce(nullif(btrim(data->>'code'), ''), data->>'name')
      END)), '')
    $$`)
  yield* sql`
    CREATE INDEX records_natural_key ON records (tenant_id, entity, concord_natural_key(entity, data))
    WHERE concord_natural_key(entity, data) IS NOT NULL`
})

/**
 * Natural keys as `Drift.naturalKey` computes them: trimmed of every ASCII white-space character (btrim alone
 * trims only spaces) and with ASCII letters in lower case whatever the database's locale; the index is rebuilt.
 */
const m0014 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE OR REPLACE FUNCTION concord_natural_key(entity text, data jsonb) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT nullif(translate(btrim(CASE
        WHEN entity IN ('invoice', 'bill', 'credit_note', 'vendor_credit', 'sales_receipt', 'journal_entry', 'refund', 'expense', 'deposit')
          THEN data->>'number'
        WHEN entity IN ('contact', 'item', 'tax_rate', 'tracking_category') THEN data->>'name'
        WHEN entity IN ('account', 'currency')
          THEN coalesce(nullif(btrim(data->>'code', E' \\t\\n\\r\\f\\x0B'), ''), data->>'name')
      END, E' \\t\\n\\r\\f\\x0B'), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), '')
    $$`)
  yield* sql`REINDEX INDEX records_natural_key`
})

/** A reconciliation the poller starts when a change feed skipped changes (QuickBooks' 30-day `/cdc`). */
const m0015 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE drift_runs DROP CONSTRAINT drift_runs_trigger_check`
  yield* sql`ALTER TABLE drift_runs ADD CONSTRAINT drift_runs_trigger_check CHECK (trigger IN ('scheduled', 'manual', 'feed_gap'))`
})

/** A run's app-side count at its checkpoint, so an app step done again after a crash does not count twice. */
const m0016 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE drift_runs ADD COLUMN checkpoint_app_records bigint NOT NULL DEFAULT 0`
})

/** Migrations by `<id>_<name>`; never edit one that has shipped, add the next. */
export const migrations = {
  "1_initial": m0001,
  "2_parked": m0002,
  "3_webhook_receipts": m0003,
  "4_parked_operations": m0004,
  "5_link_updated_at": m0005,
  "6_idempotent_batches": m0006,
  "8_polling": m0008,
  "9_backfills": m0009,
  "10_idempotency_answers": m0010,
  "11_drift": m0011,
  "12_drift_checkpoints": m0012,
  "13_records_natural_key": m0013,
  "14_natural_key_whitespace": m0014,
  "15_drift_feed_gap": m0015,
  "16_drift_app_checkpoint": m0016
}

/** Runs pending migrations once, even when several nodes start together. */
export const migrate = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const run = Migrator.make({})({ loader: Migrator.fromRecord(migrations), table: "concord_migrations" })
  return yield* sql.withTransaction(
    sql`SELECT pg_advisory_xact_lock(8152024)`.pipe(Effect.andThen(run))
  )
})
