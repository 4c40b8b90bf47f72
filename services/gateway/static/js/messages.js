// The API's error codes in plain words, for the status line next to the control that failed.

const MODALITY_NAMES = { text: "text", speech: "speech", image: "image", video: "video", fusion: "fusion" };

const BY_CODE = {
  network: "Could not reach the server. Check your connection and try again.",
  unauthorized: "Your session has ended. Please log in again.",
  forbidden: "You are not allowed to do that.",
  not_found: "That item no longer exists.",
  conflict: "That already exists.",
  payload_too_large: "The file is too large. Please choose a smaller one.",
  unsupported_media_type: "This file type is not supported.",
  no_speech: "No speech was found in the recording. Speak closer to the microphone or pick another file.",
  no_face: "No face was found in the image.",
  model_not_ready: "The model is still loading. Please try again in a minute.",
  service_unavailable: "The service is not available right now. Please try again later.",
  upstream_not_ready: "The analysis service is starting up. Please try again in a minute.",
  upstream_unavailable: "The analysis service cannot be reached. Please try again later.",
  upstream_timeout: "The analysis took too long. Please try again, perhaps with a shorter input.",
  upstream_error: "The analysis service failed. Please try again later.",
  internal_error: "Something went wrong on the server. Please try again.",
};

/** How long to wait, in words. */
export function waitWords(seconds) {
  if (!seconds || seconds < 1) return "in a moment";
  if (seconds < 90) return `in ${seconds} second${seconds === 1 ? "" : "s"}`;
  return `in ${Math.ceil(seconds / 60)} minutes`;
}

/** A message for an ApiError (or any error) raised while doing `action` ("login", "register", ...). */
export function explain(error, action = "") {
  if (!error || error.name === "AbortError") return "";
  const code = error.code || "";
  if (error.status === 429 || code === "rate_limited") {
    return `Too many requests. Please try again ${waitWords(error.retryAfter)}.`;
  }
  if (error.status === 503 && error.retryAfter) {
    return `The service is busy right now. Please try again ${waitWords(error.retryAfter)}.`;
  }
  if (action === "login" && error.status === 401) {
    return error.detail && /disabled/i.test(error.detail)
      ? "This account is disabled."
      : "Wrong username or password.";
  }
  if (action === "register" && error.status === 409) return "That username or email is already registered.";
  if (code === "invalid_input" || error.status === 422) return invalidInput(error);
  if (BY_CODE[code]) return BY_CODE[code];
  if (error.status >= 500) return BY_CODE.internal_error;
  return error.detail || "The request failed.";
}

function invalidInput(error) {
  const detail = error.detail || "";
  if (/no speech/i.test(detail)) return BY_CODE.no_speech;
  if (/at least one of/i.test(detail)) return "Give at least one input first: text, a recording or an image.";
  if (/password/i.test(detail) && /8/.test(detail)) return "The password must have at least 8 characters.";
  if (/username/i.test(detail)) return "The username may use 3 to 64 letters, digits, '_', '.' or '-'.";
  if (/email/i.test(detail)) return "Please enter a valid email address.";
  if (/decode|corrupt|could not read|invalid (audio|image)/i.test(detail)) {
    return "The file could not be read. Is it a complete audio or image file?";
  }
  return detail ? `Please check the input: ${detail}` : "Please check the input.";
}

/** A failed modality inside an otherwise successful prediction. */
export function explainModality(modality, failure) {
  const name = MODALITY_NAMES[modality] || modality;
  if (!failure) return "";
  if (failure.code === "no_speech") return "No speech found in the recording.";
  if (failure.code === "no_face") return "No face found in the image.";
  if (failure.status === 413) return `The ${name} file is too large.`;
  if (failure.status === 415) return `The ${name} file type is not supported.`;
  if (failure.status === 422) return `The ${name} input could not be used: ${failure.detail}`;
  if (failure.code === "upstream_timeout") return `The ${name} analysis took too long.`;
  if (failure.status === 503) return `The ${name} analysis is not available right now.`;
  return `The ${name} analysis failed.`;
}
