// The verification page: send a video to POST /v1/verifications and show the verdict.
// Everything from the server is set as text (never as HTML): a manifest's fields are the uploader's words.
"use strict";

const KEY_STORAGE = "xp-sdk.api-key";
const $ = (id) => document.getElementById(id);

function setText(id, value) {
  $(id).textContent = value === null || value === undefined || value === "" ? "–" : String(value);
}

function setVerdict(id, text, tone) {
  const el = $(id);
  el.textContent = text;
  el.className = "verdict " + tone;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function render(report, fileName) {
  $("file-name").textContent = fileName;

  const c2pa = report.c2pa;
  const tone = { trusted: "ok", valid: "warn", invalid: "bad", absent: "bad" }[c2pa.state] || "warn";
  setVerdict("c2pa-state", c2pa.state, tone);
  setText("c2pa-signer", c2pa.summary ? c2pa.summary.signer : null);
  setText("c2pa-codes", c2pa.codes.length ? c2pa.codes.join(", ") : null);

  const mark = report.watermark;
  if (!mark.checked) setVerdict("wm-detected", "not checked", "warn");
  else setVerdict("wm-detected", mark.detected ? "detected" : "not detected", mark.detected ? "ok" : "bad");
  setText("wm-payload", mark.payload);
  setText("wm-p-value", mark.p_value === null ? null : Number(mark.p_value).toExponential(2));
  setText("wm-threshold", Number(mark.threshold).toExponential(0));
  setText("wm-frames", mark.frames);

  const record = report.generation;
  if (record) {
    setVerdict("generation-verdict", "on record", record.status === "completed" ? "ok" : "warn");
    setText("generation-id", record.id);
    setText("generation-status", record.status);
    setText("generation-created", record.created_at);
    setText("generation-subject", record.subject_id);
    setText("generation-consent", record.consent_id);
    setText("generation-file-matches", record.file_matches_record ? "yes" : "no (an altered or re-encoded copy)");
    $("generation-record").hidden = false;
  } else {
    setVerdict("generation-verdict", "no audited generation", "bad");
    $("generation-record").hidden = true;
  }

  const still = $("still");
  if (report.still) {
    still.src = report.still;
    still.hidden = false;
    $("still-caption").textContent = "Middle frame";
  } else {
    still.removeAttribute("src");
    still.hidden = true;
    $("still-caption").textContent = "No frame could be decoded";
  }

  const consistent = report.consistent;
  $("consistency").textContent =
    consistent === true ? "The manifest's soft binding names the payload the frames carry." :
    consistent === false ? "The manifest and the watermark disagree: treat this file as altered." :
    "Manifest and watermark could not be compared (one of them is missing).";
  $("report").hidden = false;
}

async function verify(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  const file = $("video").files[0];
  if (!key || !file) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  $("error").hidden = true;
  $("report").hidden = true;
  $("submit").disabled = true;
  $("status").textContent = "Verifying " + file.name + "…";
  const body = new FormData();
  body.append("video", file, file.name);
  try {
    const response = await fetch("/v1/verifications?still=true", {
      method: "POST",
      headers: { Authorization: "Bearer " + key },
      body,
    });
    const payload = await response.json().catch(() => null);
    if (!response.ok) {
      const what = payload && payload.message ? payload.type + ": " + payload.message : "HTTP " + response.status;
      showError(what);
      return;
    }
    render(payload, file.name);
  } catch (err) {
    showError("The server could not be reached: " + err);
  } finally {
    $("submit").disabled = false;
    $("status").textContent = "";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) $("api-key").value = saved;
  $("verify-form").addEventListener("submit", verify);
});
