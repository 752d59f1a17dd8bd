/**
 * Events written for a relayed request name the account it was relayed for. A relay forwards
 * every filing under its own token, so the event's `actor` is the relay's account; the main sets
 * the transaction-local `ccat.on_behalf_of` to the instrument's account the relay names, and this
 * trigger adds it to each event's details as `onBehalfOf`. Additive: no column changes, rows
 * already logged stay as they are, and a transaction that sets nothing (every worker, every
 * direct filing) skips the trigger by its WHEN condition.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
create function event_log_on_behalf_of() returns trigger language plpgsql as $$
begin
  new.details := new.details || jsonb_build_object('onBehalfOf', current_setting('ccat.on_behalf_of', true));
  return new;
end $$;
create trigger event_log_on_behalf_of before insert on event_log
  for each row when (coalesce(current_setting('ccat.on_behalf_of', true), '') <> '')
  execute function event_log_on_behalf_of();
`

/** Adds the trigger that names a relayed request's original account in its events. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
