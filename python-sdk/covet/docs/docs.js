// CovetPy's interactive API page: reads the app's OpenAPI document, lists its
// operations by tag, and sends requests from a form per operation. Plain DOM code, no
// dependencies; every text from the document goes in as text, never as markup.
"use strict";

const TOKEN_KEY = "covet-docs-bearer-token";
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
let spec = null;

// el("p", {class: "x"}, "text", child) -> a new element; null children are skipped.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// The component a "#/components/schemas/Name" reference names (other refs: as is).
function deref(schema) {
  let seen = 0;
  while (schema && typeof schema.$ref === "string" && seen++ < 32) {
    const path = schema.$ref.replace(/^#\//, "").split("/").map(decodeURIComponent);
    let target = spec;
    for (const part of path) target = target ? target[part] : undefined;
    if (!target) return schema;
    const { $ref, ...rest } = schema;
    schema = Object.keys(rest).length ? { ...target, ...rest } : target;
  }
  return schema || {};
}

function refName(schema) {
  return schema && typeof schema.$ref === "string" ? schema.$ref.split("/").pop() : null;
}

// A short type label: "integer", "array of Item", "string | null", "one of: a, b".
function typeLabel(schema, depth = 0) {
  if (!schema || depth > 6) return "any";
  const name = refName(schema);
  const s = deref(schema);
  if (name && !s.enum) return name;
  const union = s.anyOf || s.oneOf;
  if (union) return union.map((x) => typeLabel(x, depth + 1)).join(" | ");
  if (s.enum) return (name ? name + ": " : "") + "one of " + s.enum.map((v) => JSON.stringify(v)).join(", ");
  if ("const" in s) return JSON.stringify(s.const);
  if (s.type === "array") return "array of " + typeLabel(s.items, depth + 1);
  let label = Array.isArray(s.type) ? s.type.join(" | ") : s.type || (s.properties ? "object" : "any");
  if (s.format) label += " (" + s.format + ")";
  return label;
}

const CONSTRAINTS = {
  minimum: "≥", exclusiveMinimum: ">", maximum: "≤", exclusiveMaximum: "<", multipleOf: "multiple of",
  minLength: "min length", maxLength: "max length", minItems: "min items", maxItems: "max items",
  pattern: "pattern", default: "default",
};

function constraintText(schema) {
  const s = deref(schema);
  const parts = [];
  const sources = [s, ...(s.anyOf || []).map(deref)];
  for (const src of sources) {
    for (const [key, word] of Object.entries(CONSTRAINTS)) {
      if (key in src) parts.push(word + " " + JSON.stringify(src[key]));
    }
  }
  return [...new Set(parts)].join(", ");
}

// A nested list of an object schema's fields (refs resolved; cycles and depth bounded).
function schemaTree(schema, seen = new Set(), depth = 0) {
  const name = refName(schema);
  const s = deref(schema);
  const label = el("code", {}, typeLabel(schema));
  if (depth > 5 || (name && seen.has(name))) return label;
  const inner = s.type === "array" ? deref(s.items) : s;
  const nested = s.type === "array" ? s.items : schema;
  if (!inner || !inner.properties) return label;
  const now = new Set(seen);
  const innerName = refName(nested);
  if (name) now.add(name);
  if (innerName) now.add(innerName);
  const required = new Set(inner.required || []);
  const items = Object.entries(inner.properties).map(([field, sub]) =>
    el("li", {}, el("span", { class: "field" }, field), required.has(field) ? el("span", { class: "req" }, " *") : null,
      ": ", schemaTree(sub, now, depth + 1),
      constraintText(sub) ? el("span", { class: "muted" }, " — " + constraintText(sub)) : null));
  return el("div", {}, label, el("ul", { class: "tree" }, items));
}

// A value that fits the schema, to prefill a body.
function example(schema, depth = 0) {
  const s = deref(schema);
  if (depth > 6) return null;
  if ("default" in s) return s.default;
  if (Array.isArray(s.examples) && s.examples.length) return s.examples[0];
  if (s.enum) return s.enum[0];
  if ("const" in s) return s.const;
  const union = s.anyOf || s.oneOf;
  if (union) return example(union.find((x) => deref(x).type !== "null") || union[0], depth + 1);
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== "null") : s.type;
  if (type === "object" || s.properties) {
    const out = {};
    for (const [field, sub] of Object.entries(s.properties || {})) out[field] = example(sub, depth + 1);
    return out;
  }
  if (type === "array") return [example(s.items, depth + 1)];
  if (type === "integer" || type === "number") return s.minimum ?? s.exclusiveMinimum ?? 0;
  if (type === "boolean") return true;
  if (type === "null") return null;
  if (type === "string") {
    if (s.format === "date-time") return new Date().toISOString();
    if (s.format === "date") return new Date().toISOString().slice(0, 10);
    if (s.format === "uuid") return "00000000-0000-0000-0000-000000000000";
    return "string";
  }
  return null;
}

function operations() {
  const ops = [];
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      if (item[method]) ops.push({ path, method, op: item[method], shared: item.parameters || [] });
    }
  }
  return ops;
}

function render() {
  const main = document.getElementById("operations");
  const info = spec.info || {};
  document.getElementById("api-title").textContent = info.title || "API";
  const meta = document.getElementById("api-meta");
  meta.prepend(el("span", { class: "version" }, "version " + (info.version || "?")), " · ");
  if (info.description) meta.after(el("p", { class: "description" }, info.description));
  const groups = new Map();
  for (const entry of operations()) {
    const tag = (entry.op.tags && entry.op.tags[0]) || "default";
    if (!groups.has(tag)) groups.set(tag, []);
    groups.get(tag).push(entry);
  }
  main.replaceChildren();
  if (!groups.size) main.append(el("p", { class: "notice" }, "This API documents no operations."));
  let index = 0;
  for (const [tag, entries] of groups) {
    const id = "tag-" + tag.replace(/\W+/g, "-");
    main.append(el("section", { class: "tag", "aria-labelledby": id }, el("h2", { id }, tag),
      entries.map((entry) => operationView(entry, index++))));
  }
  // A link to one operation (#op-<operationId>) opens it.
  const linked = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (linked && linked.tagName === "DETAILS") {
    linked.open = true;
    linked.scrollIntoView();
  }
}

function operationView({ path, method, op, shared }, index) {
  const body = el("div", { class: "op-body" });
  const id = "op-" + (op.operationId || String(index)).replace(/[^\w-]/g, "_");
  const details = el("details", { class: "op " + method + (op.deprecated ? " deprecated" : ""), id },
    el("summary", {},
      el("span", { class: "method" }, method.toUpperCase()),
      el("code", { class: "path" }, path),
      el("span", { class: "summary" }, op.summary || ""),
      op.deprecated ? el("span", { class: "badge" }, "deprecated") : null,
      op.security && op.security.length ? el("span", { class: "badge lock", title: "requires a bearer token" }, "auth") : null),
    body);
  details.addEventListener("toggle", () => {
    if (!details.open) return;
    if (!body.childElementCount) body.append(...operationBody(path, method, op, shared, index));
    history.replaceState(null, "", "#" + id); // a link to this operation
  });
  return details;
}

function operationBody(path, method, op, shared, index) {
  const parts = [];
  if (op.description) parts.push(el("p", { class: "description" }, op.description));
  const params = [...shared, ...(op.parameters || [])].map(deref);
  if (params.length) {
    parts.push(el("h3", {}, "Parameters"), el("table", {},
      el("thead", {}, el("tr", {}, ["Name", "In", "Type", "Required", "Constraints", "Description"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, params.map((p) => el("tr", {},
        el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, typeLabel(p.schema)),
        el("td", {}, p.required ? "yes" : "no"), el("td", {}, constraintText(p.schema)),
        el("td", {}, (p.deprecated ? "(deprecated) " : "") + (p.description || "")))))));
  }
  const content = op.requestBody && deref(op.requestBody).content;
  const [mediaType, media] = content ? Object.entries(content)[0] || [] : [];
  if (media) {
    parts.push(el("h3", {}, "Request body ", el("span", { class: "muted" }, mediaType + (op.requestBody.required ? ", required" : ""))),
      schemaTree(media.schema || {}));
  }
  parts.push(el("h3", {}, "Responses"), el("dl", { class: "responses" },
    Object.entries(op.responses || {}).map(([status, response]) => {
      const r = deref(response);
      const first = r.content && Object.entries(r.content)[0];
      return [el("dt", {}, status), el("dd", {}, r.description || "",
        first ? el("div", {}, el("span", { class: "muted" }, first[0] + ": "), schemaTree(first[1].schema || {})) : null)];
    })));
  parts.push(tryForm(path, method, op, params, mediaType, media, index));
  return parts;
}

function paramInput(p, id) {
  const s = deref(p.schema);
  const choices = s.enum || (s.anyOf || []).map(deref).find((x) => x.enum)?.enum;
  const isBool = s.type === "boolean" || (s.anyOf || []).some((x) => deref(x).type === "boolean");
  if (choices || isBool) {
    const values = choices || [true, false];
    return el("select", { id, name: p.name }, el("option", { value: "" }, "—"),
      values.map((v) => el("option", { value: String(v), selected: "default" in s && s.default === v }, String(v))));
  }
  const isArray = s.type === "array";
  const value = "default" in s ? (isArray ? s.default.join(", ") : String(s.default)) : "";
  return el("input", { id, name: p.name, value, placeholder: isArray ? "comma-separated values" : typeLabel(p.schema),
    disabled: p.in === "cookie", "data-array": isArray });
}

function tryForm(path, method, op, params, mediaType, media, index) {
  const inputs = params.map((p, i) => paramInput(p, `op-${index}-p-${i}`));
  const fields = params.map((p, i) => el("div", { class: "field-row" },
    el("label", { for: inputs[i].id }, p.name, el("span", { class: "muted" }, ` (${p.in}${p.required ? ", required" : ""})`)),
    inputs[i],
    p.in === "cookie" ? el("span", { class: "muted" }, "cookies come from the browser; this page cannot set them") : null));
  const bodyInput = media ? el("textarea", { id: `op-${index}-body`, rows: 8, spellcheck: "false" },
    JSON.stringify(example(media.schema || {}), null, 2)) : null;
  const bodyField = media ? el("div", { class: "field-row" },
    el("label", { for: bodyInput.id }, "Body (" + mediaType + ")"), bodyInput) : null;
  const result = el("div", { class: "result", "aria-live": "polite" });
  const form = el("form", { class: "try" }, el("h3", {}, "Try it"), fields, bodyField,
    el("button", { type: "submit" }, "Send " + method.toUpperCase() + " request"), result);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send({ path, method, op, params, inputs, mediaType, bodyInput, result });
  });
  return form;
}

async function send({ path, method, op, params, inputs, mediaType, bodyInput, result }) {
  let url = path;
  const query = new URLSearchParams();
  const headers = new Headers();
  const missing = [];
  params.forEach((p, i) => {
    const input = inputs[i];
    const raw = input.value.trim();
    if (raw === "" || p.in === "cookie") {
      if (p.required && p.in !== "cookie") missing.push(p.name);
      return;
    }
    const values = input.dataset.array !== undefined ? raw.split(",").map((v) => v.trim()).filter(Boolean) : [raw];
    if (p.in === "path") {
      const encoded = encodeURIComponent(raw);
      url = url.replace("{" + p.name + "}", p["x-covet-catch-all"] ? encoded.replace(/%2F/g, "/") : encoded);
    } else if (p.in === "query") values.forEach((v) => query.append(p.name, v));
    else if (p.in === "header") values.forEach((v) => headers.append(p.name, v));
  });
  if (missing.length) {
    result.replaceChildren(el("p", { class: "error" }, "Fill in the required parameters: " + missing.join(", ")));
    return;
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token && op.security && op.security.length) headers.set("Authorization", "Bearer " + token);
  const init = { method: method.toUpperCase(), headers };
  if (bodyInput && bodyInput.value.trim() !== "") {
    init.body = bodyInput.value;
    headers.set("Content-Type", mediaType);
  }
  const search = query.toString();
  const target = url + (search ? "?" + search : "");
  result.replaceChildren(el("p", { class: "muted" }, "Sending " + init.method + " " + target + " …"));
  const started = performance.now();
  try {
    const response = await fetch(target, init);
    const text = await response.text();
    const ms = Math.round(performance.now() - started);
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON: as sent */ }
    result.replaceChildren(
      el("p", { class: "status s" + String(response.status)[0] }, `${response.status} ${response.statusText}`,
        el("span", { class: "muted" }, ` · ${init.method} ${target} · ${ms} ms`)),
      el("h4", {}, "Headers"),
      el("pre", { class: "headers" }, [...response.headers].map(([k, v]) => `${k}: ${v}`).join("\n")),
      el("h4", {}, "Body"),
      el("pre", { class: "body" }, shown || "(empty)"));
  } catch (err) {
    result.replaceChildren(el("p", { class: "error" }, "The request failed: " + err.message));
  }
}

async function main() {
  const main = document.getElementById("operations");
  const token = document.getElementById("bearer-token");
  token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  token.addEventListener("input", () => {
    if (token.value) sessionStorage.setItem(TOKEN_KEY, token.value);
    else sessionStorage.removeItem(TOKEN_KEY);
  });
  try {
    const response = await fetch(main.dataset.openapiUrl, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    spec = await response.json();
  } catch (err) {
    main.replaceChildren(el("p", { class: "error" }, "Could not load " + main.dataset.openapiUrl + ": " + err.message));
    return;
  }
  render();
}

main();
