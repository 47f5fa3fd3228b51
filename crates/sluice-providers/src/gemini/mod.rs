//! Google Gemini generateContent / streamGenerateContent adapter.
