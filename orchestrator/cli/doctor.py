"""`fedsage doctor` (implemented in orchestrator/doctor.py for now)."""

from orchestrator.doctor import DOCTOR_EPILOG, doctor_command

__all__ = ["DOCTOR_EPILOG", "doctor_command"]
