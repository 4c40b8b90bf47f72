// Features that depend on the gateway's version (video input, transcription, key scopes), read from /openapi.json.

let cached = null;

export async function loadOpenApi() {
  if (!cached) {
    cached = fetch("/openapi.json", { cache: "no-store" })
      .then((r) => (r.ok ? r.json() : {}))
      .catch(() => ({}));
  }
  return cached;
}

function resolve(spec, schema) {
  const ref = schema && schema.$ref;
  if (!ref) return schema || {};
  return ref.split("/").slice(1).reduce((node, key) => (node ? node[key] : undefined), spec) || {};
}

/** The operation object for `method path`, or null. */
export function operation(spec, path, method = "post") {
  return spec?.paths?.[path]?.[method] || null;
}

/** Name of the first file field of a multipart operation. */
export function fileField(spec, op, fallback) {
  const schema = resolve(spec, op?.requestBody?.content?.["multipart/form-data"]?.schema);
  const entry = Object.entries(schema.properties || {}).find(([, p]) => p.format === "binary" || p.contentMediaType);
  return entry ? entry[0] : fallback;
}

export function hasQueryParam(op, name) {
  return Boolean(op?.parameters?.some((p) => p.in === "query" && p.name === name));
}

/** Allowed values of a JSON body property (e.g. the API key scopes), or null. */
export function bodyEnum(spec, op, property) {
  const schema = resolve(spec, op?.requestBody?.content?.["application/json"]?.schema);
  const prop = schema.properties?.[property];
  if (!prop) return null;
  const items = resolve(spec, prop.items || prop);
  return items.enum || (prop.examples && Array.isArray(prop.examples[0]) ? prop.examples[0] : []) || [];
}
