from admin.integrations.routes import bp

__all__ = ["bp"]
