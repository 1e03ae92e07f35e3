"""The Gradio era tab and the reference host app."""
