// The capture cards (text, speech, image, optional video) and the prediction buttons.
import { api } from "./api.js";
import { $, $$, el, setStatus, withBusy } from "./dom.js";
import { MAX_RECORDING_S, startCamera, startRecording } from "./media.js";
import { explain } from "./messages.js";
import { fileField, hasQueryParam, loadOpenApi, operation } from "./openapi.js";
import { clearResult, showResult } from "./result.js";
import { onClear } from "./store.js";

/** The inputs chosen so far: Files from a picker, a drop, a recording or a snapshot. */
const inputs = { audio: null, image: null, video: null };
const urls = new Set();
let recorder = null;
let recordTimer = null;
let camera = null;
let videoField = "video";
let speechTranscribe = false;

const PREDICT_BUTTONS = () => $$("#text-predict, #speech-predict, #image-predict, #video-predict, #fused-predict");

function objectUrl(file) {
  const url = URL.createObjectURL(file);
  urls.add(url);
  return url;
}

function sizeText(bytes) {
  return bytes > 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} kB`;
}

/** Use `file` as the `kind` input and preview it. */
function setInput(kind, file, note = "") {
  inputs[kind] = file;
  const preview = $(`#${kind}-preview`);
  preview.replaceChildren();
  if (!file) return;
  const description = el("p", { text: `${note || file.name} (${sizeText(file.size)})` });
  const media =
    kind === "image"
      ? el("img", { src: objectUrl(file), alt: "Chosen image" })
      : el(kind, { src: objectUrl(file), controls: true, "aria-label": `Chosen ${kind}` });
  preview.append(description, media);
  setStatus($(`#${kind}-status`), "");
}

function wireFileInput(kind) {
  $(`#${kind}-file`).addEventListener("change", (event) => setInput(kind, event.target.files[0] || null));
}

function wireDrop(form) {
  const kind = form.dataset.accept;
  const status = $(`#${kind}-status`);
  form.addEventListener("dragover", (event) => {
    event.preventDefault();
    form.classList.add("dragging");
  });
  form.addEventListener("dragleave", () => form.classList.remove("dragging"));
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    form.classList.remove("dragging");
    const file = Array.from(event.dataTransfer?.files || [])[0];
    if (!file) return;
    if (file.type && !file.type.startsWith(`${kind}/`)) {
      setStatus(status, `That is not ${kind === "image" ? "an image" : `a ${kind} file`}: ${file.name}`, "error");
      return;
    }
    $(`#${kind}-file`).value = "";
    setInput(kind, file, `Dropped: ${file.name}`);
  });
}

async function predict({ button, status, busyText, send, image = null }) {
  // Earlier messages next to the other inputs are about earlier attempts: drop them.
  for (const node of $$("#predict .status")) if (node !== status) setStatus(node, "");
  await withBusy({
    buttons: PREDICT_BUTTONS(),
    status,
    busyText,
    explain,
    action: "predict",
    work: async () => {
      clearResult(); // never leave the previous answer next to a new input
      const result = await (await send()).json();
      await showResult(result, { image });
      document.dispatchEvent(new CustomEvent("predictions-changed"));
      return `Done: ${result.label || "see the result below"}.`;
    },
  });
  button.focus({ preventScroll: true });
}

function fileForm(kind, file) {
  const form = new FormData();
  form.append(kind, file, file.name);
  return form;
}

function requireInput(kind, status, message) {
  if (inputs[kind]) return true;
  setStatus(status, message, "error");
  return false;
}

function wirePredictions() {
  $("#text-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const status = $("#text-status");
    const text = $("#text-input").value;
    if (!text.trim()) {
      setStatus(status, "Type some text first.", "error");
      $("#text-input").focus();
      return;
    }
    predict({
      button: $("#text-predict"),
      status,
      busyText: "Analysing the text…",
      send: () => api("/predict/text", { method: "POST", json: { text } }),
    });
  });

  $("#audio-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const status = $("#audio-status");
    if (!requireInput("audio", status, "Choose, drop or record audio first.")) return;
    const query = new URLSearchParams();
    if (speechTranscribe && $("#audio-transcribe")?.checked) query.set("transcribe", "true");
    predict({
      button: $("#speech-predict"),
      status,
      busyText: "Analysing the speech…",
      send: () => api("/predict/speech", { method: "POST", form: fileForm("audio", inputs.audio), query }),
    });
  });

  $("#image-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const status = $("#image-status");
    if (!requireInput("image", status, "Choose, drop or take a picture first.")) return;
    const image = inputs.image;
    predict({
      button: $("#image-predict"),
      status,
      busyText: "Looking for faces…",
      image,
      send: () => api("/predict/image", { method: "POST", form: fileForm("image", image) }),
    });
  });

  $("#video-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const status = $("#video-status");
    if (!requireInput("video", status, "Choose or drop a video first.")) return;
    const form = new FormData();
    form.append(videoField, inputs.video, inputs.video.name);
    predict({
      button: $("#video-predict"),
      status,
      busyText: "Analysing the video…",
      send: () => api("/predict/video", { method: "POST", form }),
    });
  });

  $("#fused-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const status = $("#fused-status");
    const text = $("#text-input").value;
    const form = new FormData();
    if (text.trim()) form.append("text", text);
    if (inputs.audio) form.append("audio", inputs.audio, inputs.audio.name);
    if (inputs.image) form.append("image", inputs.image, inputs.image.name);
    if (![...form.keys()].length) {
      setStatus(status, "Give at least one input above first: text, speech or an image.", "error");
      return;
    }
    const image = inputs.image;
    predict({
      button: $("#fused-predict"),
      status,
      busyText: "Analysing every input and fusing…",
      image,
      send: () => api("/predict/multimodal", { method: "POST", form }),
    });
  });
}

function mediaError(error, what) {
  if (error && (error.name === "NotAllowedError" || error.name === "SecurityError")) {
    return `Access to the ${what} was refused. Allow it in the browser's site settings, or pick a file instead.`;
  }
  if (error && error.name === "NotFoundError") return `No ${what} was found on this device.`;
  return `The ${what} could not be started${error?.message ? `: ${error.message}` : "."}`;
}

async function stopRecording() {
  if (!recorder) return;
  const active = recorder;
  recorder = null;
  clearInterval(recordTimer);
  $("#record-stop").hidden = true;
  $("#record-start").hidden = false;
  const status = $("#audio-status");
  try {
    const { file, seconds } = await active.stop();
    $("#audio-file").value = "";
    setInput("audio", file, `Recording, ${seconds.toFixed(1)} s`);
    setStatus(status, `Recorded ${seconds.toFixed(1)} s. Press "Predict speech" to analyse it.`, "ok");
  } catch (error) {
    setStatus(status, mediaError(error, "microphone"), "error");
  }
  $("#record-start").focus();
}

function wireMedia() {
  const status = $("#audio-status");
  $("#record-start").addEventListener("click", async () => {
    if (!navigator.mediaDevices?.getUserMedia) {
      setStatus(status, "This browser cannot record audio here (it needs HTTPS or localhost).", "error");
      return;
    }
    $("#record-start").disabled = true;
    try {
      recorder = await startRecording();
      $("#record-start").hidden = true;
      $("#record-stop").hidden = false;
      $("#record-stop").focus();
      const started = recorder.started;
      const tick = () => {
        const seconds = (performance.now() - started) / 1000;
        setStatus(status, `Recording… ${seconds.toFixed(0)} s (stops by itself at ${MAX_RECORDING_S} s)`, "busy");
        if (seconds >= MAX_RECORDING_S) stopRecording();
      };
      tick();
      recordTimer = setInterval(tick, 500);
    } catch (error) {
      setStatus(status, mediaError(error, "microphone"), "error");
    } finally {
      $("#record-start").disabled = false;
    }
  });
  $("#record-stop").addEventListener("click", stopRecording);

  const imageStatus = $("#image-status");
  const video = $("#camera-video");
  const showCamera = (on) => {
    video.hidden = !on;
    $("#camera-snap").hidden = !on;
    $("#camera-stop").hidden = !on;
    $("#camera-start").hidden = on;
  };
  $("#camera-start").addEventListener("click", async () => {
    if (!navigator.mediaDevices?.getUserMedia) {
      setStatus(imageStatus, "This browser cannot use the camera here (it needs HTTPS or localhost).", "error");
      return;
    }
    $("#camera-start").disabled = true;
    $("#camera-snap").disabled = true; // until the first frame is there
    try {
      showCamera(true);
      setStatus(imageStatus, "Starting the camera…", "busy");
      camera = await startCamera(video);
      $("#camera-snap").disabled = false;
      setStatus(imageStatus, 'Camera on. Press "Take snapshot" when ready.');
      $("#camera-snap").focus();
    } catch (error) {
      showCamera(false);
      setStatus(imageStatus, mediaError(error, "camera"), "error");
    } finally {
      $("#camera-start").disabled = false;
    }
  });
  $("#camera-snap").addEventListener("click", async () => {
    if (!camera || !video.videoWidth) return;
    const file = await camera.snapshot();
    $("#image-file").value = "";
    setInput("image", file, "Camera snapshot");
    setStatus(imageStatus, 'Snapshot taken. Press "Predict image" to analyse it.', "ok");
  });
  $("#camera-stop").addEventListener("click", () => {
    closeCamera();
    $("#camera-start").focus();
  });
  function closeCamera() {
    if (camera) camera.stop();
    camera = null;
    showCamera(false);
  }
  onClear(closeCamera);
}

/** Show the inputs this gateway supports (video, transcription) from its OpenAPI document. */
export async function enableOptionalInputs() {
  const spec = await loadOpenApi();
  const videoOp = operation(spec, "/api/predict/video");
  $("#video-form").hidden = !videoOp;
  if (videoOp) videoField = fileField(spec, videoOp, "video");
  speechTranscribe = hasQueryParam(operation(spec, "/api/predict/speech"), "transcribe");
  if (speechTranscribe && !$("#audio-transcribe")) {
    const box = el("input", { type: "checkbox", id: "audio-transcribe", name: "transcribe" });
    $("#speech-predict").before(el("label", { for: "audio-transcribe", class: "inline" }, [box, " Also transcribe"]));
  }
}

function clearInputs() {
  if (recorder) recorder.cancel();
  recorder = null;
  clearInterval(recordTimer);
  $("#record-stop").hidden = true;
  $("#record-start").hidden = false;
  for (const kind of Object.keys(inputs)) setInput(kind, null);
  for (const url of urls) URL.revokeObjectURL(url);
  urls.clear();
}

export function initPredict() {
  $("#text-input").addEventListener("input", () => setStatus($("#text-status"), ""));
  for (const kind of ["audio", "image", "video"]) wireFileInput(kind);
  for (const form of $$(".drop")) wireDrop(form);
  wirePredictions();
  wireMedia();
  onClear(clearInputs);
}
