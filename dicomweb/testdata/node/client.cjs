// Runs the dicomweb-client npm package (what OHIF builds on) against a Lumen DICOMweb
// base URL: store, search, retrieve metadata, frames and instances. Usage:
//   node client.cjs <base-url> <file.dcm>...
// Prints one JSON object with what it saw; exits 1 on any exception.
global.XMLHttpRequest = require("xhr2");
const fs = require("fs");
const DICOMwebClient = require("dicomweb-client");

const [base, ...files] = process.argv.slice(2);

function first(obj, tag) {
  const a = obj[tag];
  return a && a.Value ? a.Value[0] : undefined;
}

(async () => {
  const client = new DICOMwebClient.api.DICOMwebClient({ url: base });
  const out = {};
  const datasets = files.map((f) => {
    const b = fs.readFileSync(f);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  });
  const stored = await client.storeInstances({ datasets });
  out.stored = stored ? "ok" : "no answer";

  const studies = await client.searchForStudies({ queryParams: { limit: 101, includefield: "00081030,00080060" } });
  out.studies = studies.length;
  const study = first(studies[0], "0020000D");
  out.studyName = first(studies[0], "00100010");
  const series = await client.searchForSeries({ studyInstanceUID: study });
  out.series = series.length;
  const seriesUID = first(series[0], "0020000E");
  const meta = await client.retrieveSeriesMetadata({ studyInstanceUID: study, seriesInstanceUID: seriesUID });
  out.metadata = meta.length;
  const inst = meta[0];
  const sop = first(inst, "00080018");
  out.rows = first(inst, "00280010");
  out.columns = first(inst, "00280011");
  out.bitsAllocated = first(inst, "00280100");
  const frames = await client.retrieveInstanceFrames({
    studyInstanceUID: study,
    seriesInstanceUID: seriesUID,
    sopInstanceUID: sop,
    frameNumbers: [1],
    mediaTypes: [{ mediaType: "application/octet-stream", transferSyntaxUID: "*" }],
  });
  out.frames = frames.length;
  out.frameBytes = frames[0].byteLength;
  const instance = await client.retrieveInstance({ studyInstanceUID: study, seriesInstanceUID: seriesUID, sopInstanceUID: sop });
  out.instanceBytes = instance.byteLength;
  out.sop = sop;
  const instances = await client.searchForInstances({ studyInstanceUID: study, seriesInstanceUID: seriesUID });
  out.instances = instances.length;
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error("dicomweb-client failed:", e && (e.stack || e.message || e));
  process.exit(1);
});
