"""Era Split core: pure steps over arrays, plus the edge modules that read host files
and write the library. No Gradio and no pluggy here."""
