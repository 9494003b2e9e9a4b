// Renders /openapi.json as a plain listing: operations, parameters, bodies and answers.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function refName(schema) {
  return schema && schema.$ref ? schema.$ref.split("/").pop() : null;
}

function schemaText(schema, components, depth) {
  if (!schema) return "";
  const name = refName(schema);
  if (name) return depth > 1 ? name : name + " " + schemaText(components[name], components, depth + 1);
  if (schema.anyOf) return schema.anyOf.map((s) => schemaText(s, components, depth)).join(" | ");
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.type === "array") return "[" + schemaText(schema.items, components, depth) + "]";
  if (schema.type === "object" && schema.properties) {
    const required = new Set(schema.required || []);
    const fields = Object.entries(schema.properties).map(
      ([key, value]) => "  ".repeat(depth + 1) + key + (required.has(key) ? "" : "?") + ": " +
        schemaText(value, components, depth + 1)
    );
    return "{\n" + fields.join(",\n") + "\n" + "  ".repeat(depth) + "}";
  }
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
  return (type || "any") + (schema.format ? " (" + schema.format + ")" : "");
}

async function render() {
  const main = document.getElementById("docs");
  const doc = await (await fetch("/openapi.json")).json();
  const components = doc.components.schemas;
  main.replaceChildren(el("p", {}, doc.info.description));
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const section = el("section", { class: "operation", id: op.operationId });
      section.append(el("h2", {}, el("span", { class: "method " + method }, method.toUpperCase()), " " + path));
      section.append(el("p", {}, op.summary), el("p", { class: "muted" }, op.description));
      if (op.parameters.length) {
        const list = el("ul", {});
        for (const p of op.parameters) {
          list.append(el("li", {}, el("code", {}, p.name), ` (${p.in}, ${p.schema.type}${p.required ? ", required" : ""}): ${p.description}`));
        }
        section.append(el("h3", {}, "Parameters"), list);
      }
      if (op.requestBody) {
        section.append(el("h3", {}, "Body"), el("pre", {}, schemaText(op.requestBody.content["application/json"].schema, components, 0)));
      }
      const answers = el("ul", {});
      for (const [status, answer] of Object.entries(op.responses)) {
        const content = answer.content || {};
        const json = content["application/json"];
        const shape = json ? " " + (refName(json.schema) || "") : content["text/event-stream"] ? " (text/event-stream)" : "";
        answers.append(el("li", {}, el("code", {}, status), " " + answer.description + shape));
      }
      section.append(el("h3", {}, "Answers"), answers);
      main.append(section);
    }
  }
  const schemas = el("section", { class: "operation" }, el("h2", {}, "Bodies"));
  for (const name of Object.keys(components).sort()) {
    schemas.append(el("h3", { id: "schema-" + name }, name), el("pre", {}, schemaText(components[name], components, 1)));
  }
  main.append(schemas);
}

render().catch((error) => {
  document.getElementById("docs").textContent = "Could not load /openapi.json: " + error;
});
