"""Tests in a real browser: Playwright driving the system's Chromium against a real server."""
