// The seven emotions (same order as the API) and one colour each, used by bars and charts.

export const EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];

export const COLORS = {
  angry: "#c62828",
  disgust: "#5d4037",
  fear: "#6a1b9a",
  happy: "#b26a00",
  sad: "#1565c0",
  surprise: "#00796b",
  neutral: "#616161",
  none: "#9e9e9e",
};
