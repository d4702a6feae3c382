from admin.settings.routes import bp

__all__ = ["bp"]
