import { assert, describe, it } from "@effect/vitest"
import type { EntityKind } from "../src/EventLog.js"
import * as StateMachine from "../src/StateMachine.js"
import * as Status from "../src/Status.js"

const kinds = Object.keys(StateMachine.machines) as Array<EntityKind>

describe("StateMachine", () => {
  it("every machine is closed: initial and next states are states of the machine", () => {
    for (const kind of kinds) {
      const machine = StateMachine.machines[kind]
      for (const s of machine.initial) assert.isTrue(StateMachine.isState(kind, s), `${kind}: initial ${s}`)
      for (const [from, to] of StateMachine.transitions(kind)) {
        assert.isTrue(StateMachine.isState(kind, to), `${kind}: ${from} → ${to}`)
        assert.notStrictEqual(from, to, `${kind}: no self-loops, a transition is a change`)
      }
    }
  })

  it("every state is reachable from an initial state", () => {
    for (const kind of kinds) {
      const seen = new Set<string>(StateMachine.machines[kind].initial)
      const queue = [...seen]
      while (queue.length > 0) {
        for (const next of StateMachine.nextStates(kind, queue.shift() as never)) {
          if (!seen.has(next)) {
            seen.add(next)
            queue.push(next)
          }
        }
      }
      assert.sameMembers([...seen], [...StateMachine.states(kind)], kind)
    }
  })

  it("answers legality from the data, and refuses unknown states", () => {
    assert.isTrue(StateMachine.canTransition("RawDataPackage", "pending", "scheduled"))
    assert.isFalse(StateMachine.canTransition("RawDataPackage", "completed", "pending"))
    assert.isTrue(StateMachine.canTransition("RawDataPackage", "failed", "pending"), "a package can be retried")
    assert.isFalse(StateMachine.canTransition("DataTransfer", "failed", "pending"), "an attempt is never retried in place")
    assert.isFalse(StateMachine.canTransition("PhysicalCopy", "DELETED", "PRESENT"), "DELETED is final")
    assert.isFalse(StateMachine.canTransition("PhysicalCopy", "PRESENT", "DELETED"), "deletion goes through its steps")
    assert.isFalse(StateMachine.canTransition("StagingRequest", "pending", "PRESENT"))
    assert.isFalse(StateMachine.canTransition("StagingRequest", "toString", "pending"))
    assert.isTrue(StateMachine.isFinal("DataTransfer", "failed"))
    assert.isFalse(StateMachine.isFinal("RawDataPackage", "failed"))
  })

  it("a package's journey is derived from its status", () => {
    assert.deepStrictEqual(
      Status.statuses.map(Status.journey),
      ["WAITING", "WAITING", "TRANSFERRING", "ARCHIVED", "FAILED"]
    )
  })
})
