"""Thin gRPC servicers: protobuf in, handler or reader calls, protobuf out.

They translate requests to the application's vocabulary (``convert``), refusals to gRPC
statuses with rich details (``status``), and nothing more.
"""
