// The uploaded image with each detected face's box and label drawn on a canvas.
import { el, percent } from "./dom.js";
import { COLORS } from "./labels.js";

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(file);
    const image = new Image();
    image.onload = () => resolve({ image, url });
    image.onerror = () => {
      URL.revokeObjectURL(url);
      reject(new Error("image could not be shown"));
    };
    image.src = url;
  });
}

/** A figure with the image, the boxes and labels, and the same facts as a list for screen readers. */
export async function facesFigure(file, faces, size = {}) {
  const figure = el("figure", { class: "faces" });
  const { image, url } = await loadImage(file);
  try {
    const width = size.width || image.naturalWidth;
    const height = size.height || image.naturalHeight;
    const canvas = el("canvas", {
      width,
      height,
      role: "img",
      "aria-label": faces.length ? `Image with ${faces.length} face box(es)` : "Image, no face found",
      "data-faces": faces.length,
    });
    const ctx = canvas.getContext("2d");
    ctx.drawImage(image, 0, 0, width, height);
    const line = Math.max(2, Math.round(Math.min(width, height) / 100));
    const fontSize = Math.max(12, Math.round(Math.min(width, height) / 18));
    ctx.font = `bold ${fontSize}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    faces.forEach((face, index) => {
      const { x, y, w, h } = face.box;
      const color = COLORS[face.label] || "#0b57d0";
      ctx.lineWidth = line;
      ctx.strokeStyle = color;
      ctx.strokeRect(x, y, w, h);
      const text = `${index + 1}. ${face.label} ${percent(face.probabilities?.[face.label])}`;
      const textWidth = ctx.measureText(text).width + 8;
      const top = y - fontSize - 6 >= 0 ? y - fontSize - 6 : y + h;
      ctx.fillStyle = color;
      ctx.fillRect(x, top, textWidth, fontSize + 6);
      ctx.fillStyle = "#ffffff";
      ctx.fillText(text, x + 4, top + 3);
    });
    figure.append(canvas);
    if (faces.length) {
      const list = el("ol", { class: "face-list" });
      for (const face of faces) {
        const { x, y, w, h } = face.box;
        list.append(el("li", { text: `${face.label} (${percent(face.probabilities?.[face.label])}), box ${w}×${h} at ${x},${y}` }));
      }
      figure.append(el("figcaption", { text: "Faces found" }), list);
    }
  } finally {
    URL.revokeObjectURL(url);
  }
  return figure;
}
