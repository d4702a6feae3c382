from admin.programs.routes import bp

__all__ = ["bp"]
