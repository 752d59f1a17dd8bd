/**
 * @ccat/transfer-rsync: the rsync transfer adapter (local, or over ssh) for the CCAT Data Center.
 */
export * as RsyncCommand from "./RsyncCommand.js"
export * as RsyncRouteOptions from "./RsyncRouteOptions.js"
export * as RsyncTransfer from "./RsyncTransfer.js"
