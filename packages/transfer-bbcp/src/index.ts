/**
 * @ccat/transfer-bbcp: the BBCP transfer adapter for the CCAT Data Center, with its typed
 * command-line builder and the parser of what bbcp prints.
 */
export * as BbcpCommand from "./BbcpCommand.js"
export * as BbcpOutput from "./BbcpOutput.js"
export * as BbcpRouteOptions from "./BbcpRouteOptions.js"
export * as BbcpTransfer from "./BbcpTransfer.js"
export * as SshMux from "./SshMux.js"
