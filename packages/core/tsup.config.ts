import { library } from "../../tsup.library.js"

export default library(["src/index.ts", "src/testing/index.ts", "src/node/index.ts", "src/node/HashRing.ts"])
