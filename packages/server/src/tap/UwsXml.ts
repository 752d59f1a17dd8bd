/**
 * The UWS 1.1 documents of asynchronous TAP jobs: the job list, one job, its results and its
 * parameters, written with xmlbuilder2 in UWS's namespace.
 */
import { create } from "xmlbuilder2"
import type { XMLBuilder } from "xmlbuilder2/lib/interfaces.js"
import type { Job } from "./UwsJobs.js"

const uws = "http://www.ivoa.net/xml/UWS/v1.0"
const xlink = "http://www.w3.org/1999/xlink"
const xsi = "http://www.w3.org/2001/XMLSchema-instance"

const root = (name: string) =>
  create({ version: "1.0", encoding: "UTF-8" }).ele(uws, `uws:${name}`, { "xmlns:xlink": xlink, "xmlns:xsi": xsi, version: "1.1" })

const nillable = (parent: XMLBuilder, name: string, value: string | null) =>
  value === null ? parent.ele(uws, `uws:${name}`, { "xsi:nil": "true" }).up() : parent.ele(uws, `uws:${name}`).txt(value).up()

const iso = (d: Date | null) => (d === null ? null : d.toISOString())

const parameters = (parent: XMLBuilder, job: Job) => {
  const list = parent.ele(uws, "uws:parameters")
  for (const [id, value] of job.params) list.ele(uws, "uws:parameter", { id }).txt(value)
  return list
}

const results = (parent: XMLBuilder, job: Job, jobUrl: string) => {
  const list = parent.ele(uws, "uws:results")
  if (job.phase === "COMPLETED") {
    list.ele(uws, "uws:result", { id: "result", "xlink:type": "simple", "xlink:href": `${jobUrl}/results/result` })
  }
  return list
}

/** The caller's jobs. */
export const jobList = (jobs: ReadonlyArray<Job>, asyncUrl: string): string => {
  const doc = root("jobs")
  for (const job of jobs) {
    const ref = doc.ele(uws, "uws:jobref", { id: job.id, "xlink:type": "simple", "xlink:href": `${asyncUrl}/${job.id}` })
    ref.ele(uws, "uws:phase").txt(job.phase)
    const runId = job.params.get("runid")
    if (runId !== undefined) ref.ele(uws, "uws:runId").txt(runId)
    nillable(ref, "ownerId", job.owner)
    ref.ele(uws, "uws:creationTime").txt(job.created.toISOString())
  }
  return doc.end()
}

/** One job, whole. */
export const job = (job: Job, jobUrl: string): string => {
  const doc = root("job")
  doc.ele(uws, "uws:jobId").txt(job.id)
  const runId = job.params.get("runid")
  if (runId !== undefined) doc.ele(uws, "uws:runId").txt(runId)
  nillable(doc, "ownerId", job.owner)
  doc.ele(uws, "uws:phase").txt(job.phase)
  nillable(doc, "quote", null)
  doc.ele(uws, "uws:creationTime").txt(job.created.toISOString())
  nillable(doc, "startTime", iso(job.started))
  nillable(doc, "endTime", iso(job.ended))
  doc.ele(uws, "uws:executionDuration").txt(String(job.executionDuration))
  doc.ele(uws, "uws:destruction").txt(job.destruction.toISOString())
  parameters(doc, job)
  results(doc, job, jobUrl)
  if (job.phase === "ERROR" && job.error !== null) {
    doc.ele(uws, "uws:errorSummary", { type: "fatal", hasDetail: "true" }).ele(uws, "uws:message").txt(job.error)
  }
  return doc.end()
}

/** A job's results list. */
export const resultList = (job: Job, jobUrl: string): string => {
  const doc = root("results")
  if (job.phase === "COMPLETED") {
    doc.ele(uws, "uws:result", { id: "result", "xlink:type": "simple", "xlink:href": `${jobUrl}/results/result` })
  }
  return doc.end()
}

/** A job's parameters. */
export const parameterList = (job: Job): string => {
  const doc = root("parameters")
  for (const [id, value] of job.params) doc.ele(uws, "uws:parameter", { id }).txt(value)
  return doc.end()
}
