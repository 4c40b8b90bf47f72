// Microphone recording (Web Audio -> WAV in the page) and webcam snapshots.
import { concat, downsample, encodeWav } from "./wav.js";

const TARGET_RATE = 16000;
export const MAX_RECORDING_S = 30;

/** A 16 kHz context (the browser resamples the microphone), or the device's rate where that is refused. */
function newContext() {
  try {
    return new AudioContext({ sampleRate: TARGET_RATE });
  } catch {
    return new AudioContext();
  }
}

/** Start recording from the microphone; `await rec.stop()` gives a WAV File. */
export async function startRecording() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  const context = newContext();
  try {
    await context.audioWorklet.addModule("/static/js/recorder-worklet.js");
  } catch (error) {
    stream.getTracks().forEach((t) => t.stop());
    await context.close();
    throw error;
  }
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm-recorder");
  const silent = context.createGain();
  silent.gain.value = 0; // keep the graph pulled without playing the microphone back
  const chunks = [];
  node.port.onmessage = (event) => chunks.push(event.data);
  source.connect(node).connect(silent).connect(context.destination);
  const started = performance.now();
  return {
    started,
    async stop() {
      stream.getTracks().forEach((t) => t.stop());
      source.disconnect();
      node.disconnect();
      const rate = context.sampleRate;
      await context.close();
      const factor = rate % TARGET_RATE === 0 ? rate / TARGET_RATE : 1;
      const samples = downsample(concat(chunks), factor);
      const blob = encodeWav(samples, rate / factor);
      const seconds = samples.length / (rate / factor);
      return { file: new File([blob], "recording.wav", { type: "audio/wav" }), seconds };
    },
    cancel() {
      stream.getTracks().forEach((t) => t.stop());
      context.close().catch(() => {});
    },
  };
}

/** Open the camera into a <video>; returns a handle with snapshot() and stop(). */
export async function startCamera(video) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } } });
  video.srcObject = stream;
  await video.play();
  return {
    async snapshot() {
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
      return new File([blob], "snapshot.png", { type: "image/png" });
    },
    stop() {
      stream.getTracks().forEach((t) => t.stop());
      video.srcObject = null;
    },
  };
}
