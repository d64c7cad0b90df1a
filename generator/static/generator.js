"use strict";
// The page draws what the server says after every answer: Copier decides which questions
// show, their defaults, which choices are offered and which answers are refused, so this
// script holds no rule of the questionnaire. It runs offline: no library, nothing fetched
// but this server's own endpoints.

const form = document.getElementById("questions");
const statusLine = document.getElementById("status");
const treeView = document.getElementById("tree");
const downloadButton = document.getElementById("download");
const previewButton = document.getElementById("preview");
// The answers given; every other question follows its default, as with `copier --defaults`.
const given = {};
let asked = 0;       // the newest state request: older answers are dropped
let refused = true;  // until the first state arrives

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function answer(name, value) {
  given[name] = value;
  treeView.textContent = "";
  refresh();
}

function choiceLabel(question, choice, index, type) {
  const label = element("label");
  const input = element("input", {type, name: question.name, value: String(index)});
  const chosen = type === "checkbox"
    ? (question.value || []).some((value) => same(value, choice.value))
    : same(question.value, choice.value);
  input.checked = chosen;
  input.disabled = Boolean(choice.disabled);
  label.append(input, ` ${choice.label}`);
  if (choice.disabled) label.append(element("span", {class: "reason"}, choice.disabled));
  return label;
}

function build(question) {
  const box = element("fieldset", {
    class: "question", id: `q-${question.name}`, "data-kind": question.kind,
  });
  box.append(element("legend", {class: "message"}, question.message || question.name));
  const control = `input-${question.name}`;
  if (question.kind === "text" || question.kind === "secret") {
    const input = question.multiline
      ? element("textarea", {id: control, name: question.name, rows: "4"})
      : element("input", {
        id: control, name: question.name,
        type: question.kind === "secret" ? "password" : "text",
      });
    if (question.placeholder) input.placeholder = question.placeholder;
    input.value = question.value ?? "";
    input.addEventListener("change", () => answer(question.name, input.value));
    box.append(input);
  } else if (question.kind === "select" || question.kind === "multiselect") {
    const type = question.kind === "select" ? "radio" : "checkbox";
    question.choices.forEach((choice, index) => {
      box.append(choiceLabel(question, choice, index, type));
    });
    box.addEventListener("change", () => {
      const ticked = [...box.querySelectorAll("input:checked")].map(
        (input) => question.choices[Number(input.value)].value,
      );
      answer(question.name, type === "radio" ? ticked[0] : ticked);
    });
  } else if (question.kind === "confirm") {
    const label = element("label");
    const input = element("input", {type: "checkbox", id: control, name: question.name});
    input.checked = question.value === true;
    input.addEventListener("change", () => answer(question.name, input.checked));
    label.append(input, " yes");
    box.append(label);
  }
  box.append(element("span", {class: "error", id: `error-${question.name}`}));
  return box;
}

function draw(questions) {
  for (const question of questions) {
    let box = document.getElementById(`q-${question.name}`);
    const typing = box && box.contains(document.activeElement)
      && box.dataset.kind === question.kind && ["text", "secret"].includes(question.kind);
    if (!typing) {
      const fresh = build(question);
      if (box) box.replaceWith(fresh);
      box = fresh;
    }
    form.append(box);  // keeps copier.yml's order
    box.hidden = !question.visible;
    box.querySelector(".error").textContent = question.error;
  }
}

async function call(url, answers) {
  const response = await fetch(url, {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({answers}),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function refresh() {
  const mine = ++asked;
  downloadButton.disabled = previewButton.disabled = true;
  try {
    const state = await call("api/state", given);
    if (mine !== asked) return;
    draw(state.questions);
    refused = Object.keys(state.errors).length > 0;
    statusLine.textContent = refused ? "Correct the answers marked in red." : "";
  } catch (error) {
    if (mine === asked) statusLine.textContent = error.message;
  }
  if (mine === asked) downloadButton.disabled = previewButton.disabled = refused;
}

previewButton.addEventListener("click", async () => {
  statusLine.textContent = "Rendering with Copier...";
  previewButton.disabled = true;
  try {
    const {files} = await call("api/preview", given);
    treeView.textContent = files.map((path) => {
      const parts = path.replace(/\/$/, "").split("/");
      return "  ".repeat(parts.length - 1) + parts.at(-1) + (path.endsWith("/") ? "/" : "");
    }).join("\n");
    treeView.dataset.files = JSON.stringify(files);
    statusLine.textContent = `${files.filter((path) => !path.endsWith("/")).length} files.`;
  } catch (error) {
    statusLine.textContent = error.message;
  }
  previewButton.disabled = refused;
});

document.getElementById("download-form").addEventListener("submit", () => {
  document.getElementById("download-answers").value = JSON.stringify({answers: given});
  statusLine.textContent = "Rendering with Copier; the download starts when it is done.";
});
form.addEventListener("submit", (event) => event.preventDefault());
refresh();
