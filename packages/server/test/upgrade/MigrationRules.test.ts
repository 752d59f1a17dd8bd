import { describe, expect, it } from "vitest"
import { judge, undeclared } from "../../src/upgrade/MigrationRules.js"
import { split } from "../../src/upgrade/SqlStatements.js"

const one = (sql: string) => {
  const judged = judge(split(sql))
  return judged[judged.length - 1]!
}

describe("splitting a migration's SQL", () => {
  it("ends statements at semicolons outside quotes, quoted names, dollar-quoted bodies and comments", () => {
    const statements = split(String.raw`
      create table a (x text default ';');
      -- a comment; with a semicolon
      create function f() returns void language plpgsql as $fn$ begin perform 1; perform 2; end $fn$;
      create table "b;c" (y int); /* one; more */ select 1;
      ;`)
    expect(statements).toHaveLength(4)
    expect(statements[1]).toContain("-- a comment; with a semicolon")
    expect(statements[1]).toContain("perform 2; end $fn$")
    expect(statements[3]).toContain("select 1")
  })
})

describe("the expand/contract rules", () => {
  it("call additions expand steps and name their locks", () => {
    expect(one("create table t (id uuid primary key, l uuid references data_location (id))")).toMatchObject({
      step: "expand",
      summary: "create table t",
      locks: [{ on: "data_location", mode: "SHARE ROW EXCLUSIVE" }]
    })
    expect(one("alter table physical_copy add column note text")).toMatchObject({
      step: "expand",
      locks: [{ on: "physical_copy", mode: "ACCESS EXCLUSIVE" }]
    })
    expect(one("alter table physical_copy add column n integer not null default 0 check (n >= 0)").step).toBe("expand")
    expect(one("alter type entity_kind add value if not exists 'Site'").step).toBe("expand")
    expect(one("create index concurrently if not exists pc_x on physical_copy (x)")).toMatchObject({
      step: "expand",
      locks: [{ on: "physical_copy", mode: "SHARE UPDATE EXCLUSIVE" }],
      notes: []
    })
    const plain = one("create index pc_x on physical_copy (x)")
    expect(plain.locks).toEqual([{ on: "physical_copy", mode: "SHARE" }])
    expect(plain.notes[0]).toContain("blocks writes to physical_copy while it builds")
    expect(one("create trigger t after insert on event_log for each row execute function f()")).toMatchObject({
      step: "expand",
      locks: [{ on: "event_log", mode: "SHARE ROW EXCLUSIVE" }]
    })
    expect(one("update raw_data_file set x = 1 where x is null").locks).toEqual([{ on: "raw_data_file", mode: "ROW EXCLUSIVE" }])
  })

  it("let a migration constrain the columns and tables it adds itself", () => {
    const judged = judge(split(`
      alter table obs_unit add column source_id uuid, add constraint obs_unit_source_fk foreign key (source_id) references source (id);
      create table fresh (id int);
      create unique index fresh_id on fresh (id);
      alter table fresh alter column id set not null;
      alter table fresh rename column id to key;
      alter table physical_copy set (fillfactor = 90);
      create table scratch (x int);
      drop table scratch`))
    expect(judged.map((j) => j.step)).toEqual(["expand", "expand", "expand", "expand", "expand", "expand", "expand", "expand"])
    // a new table's locks wait for nobody: none is reported
    expect(judged[2]!.locks).toEqual([])
  })

  it("call removals and reshapes contract steps, each with its reason", () => {
    const cases: ReadonlyArray<readonly [string, RegExp]> = [
      ["drop table old_things", /DROP removes/],
      ["alter table physical_copy drop column identity", /DROP removes or renames/],
      ["alter table physical_copy rename column identity to fingerprint", /RENAME removes or renames/],
      ["alter table data_location alter column technology type text", /changes a column's type/],
      ["alter table raw_data_file alter column checksum set not null", /SET NOT NULL/],
      ["alter table raw_data_file add column owner uuid not null", /NOT NULL without a default/],
      ["alter table raw_data_file add constraint small check (size_bytes < 10)", /constraint on existing columns/],
      ["create unique index one_per_path on raw_data_file (relative_path)", /unique index on an existing table/],
      ["alter type physical_copy_status rename value 'STAGED' to 'STAGED_COPY'", /renames or removes/],
      ["truncate event_log", /TRUNCATE/],
      ["do $$ begin alter table event_log rename to event_log_old; end $$", /DO block .* rename to event_log_old/],
      ["vacuum full physical_copy", /rules do not know/]
    ]
    for (const [sql, rule] of cases) {
      const j = one(sql)
      expect(j.step, sql).toBe("contract")
      expect(j.rule, sql).toMatch(rule)
      expect(undeclared([j]), sql).toHaveLength(1)
    }
  })

  it("take a marker comment before a statement as the author's word", () => {
    const declared = one("-- ccat:contract v0.3.0 stopped reading identity\nalter table physical_copy drop column identity")
    expect(declared).toMatchObject({ step: "contract", marker: { kind: "contract", reason: "v0.3.0 stopped reading identity" } })
    expect(undeclared([declared])).toEqual([])
    const compatible = one("-- ccat:compatible nothing reads the retired view\ndrop view retired_view")
    expect(compatible).toMatchObject({ step: "expand", marker: { kind: "compatible" } })
    // a marker on another statement covers only that one
    const judged = judge(split("-- ccat:compatible reviewed\ndrop view a;\ndrop view b"))
    expect(judged.map((j) => j.step)).toEqual(["expand", "contract"])
  })
})
