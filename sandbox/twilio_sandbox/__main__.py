from sandbox.twilio_sandbox.cli import main

main()
