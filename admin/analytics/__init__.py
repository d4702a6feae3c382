from admin.analytics.routes import bp

__all__ = ["bp"]
