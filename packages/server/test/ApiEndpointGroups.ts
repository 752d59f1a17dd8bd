/**
 * The contract's endpoint groups, each called in full by one of the endpoint test files
 * (`ApiEndpointsData.test.ts`, `ApiEndpointsAdmin.test.ts`), and what each file checks last: that
 * every endpoint of its groups was called, and that every group of the contract is one file's.
 */
import { Api } from "@ccat/core"

/** The groups `ApiEndpointsData.test.ts` calls: observations and what the data center makes of them. */
export const dataGroups: ReadonlyArray<string> = [
  "observations",
  "files",
  "packages",
  "transfers",
  "locations",
  "staging",
  "operations",
  "status",
  "integrity",
  "dataProducts"
]

/** The groups `ApiEndpointsAdmin.test.ts` calls: the server itself, tokens, accounts and the catalogs. */
export const adminGroups: ReadonlyArray<string> = ["system", "tokens", "admin", "catalog"]

/**
 * The endpoints (`group.endpoint`) a file's tests mark as called, each test once its calls have
 * succeeded; `missed` answers its groups' endpoints no test marked and the contract's groups no
 * file calls.
 */
export const calls = (groups: ReadonlyArray<string>) => {
  const called = new Set<string>()
  const contract = Object.values(Api.Api.groups)
  return {
    mark: (...names: Array<string>) => names.forEach((n) => called.add(n)),
    missed: () => ({
      endpoints: contract.filter((g) => groups.includes(g.identifier)).flatMap((g) =>
        Object.keys(g.endpoints).map((e) => `${g.identifier}.${e}`).filter((e) => !called.has(e))
      ),
      groups: contract.map((g) => g.identifier).filter((g) => !dataGroups.includes(g) && !adminGroups.includes(g))
    })
  }
}
