"""SMTP sessions per second with STARTTLS from Python's smtplib, the reference beside
tests/bench/sessions.lua's "starttls" mode: WORKERS threads, each running sessions back to back
(connect, EHLO, STARTTLS without a certificate check, EHLO, MAIL, RCPT, DATA, QUIT) until TOTAL
have been made, one ssl.SSLContext shared by all.

    python3 tests/bench/sessions_tls.py PORT [TOTAL=2000] [WORKERS=50]
"""
import smtplib
import ssl
import sys
import threading
import time

MESSAGE = b"From: <a@bench.test>\r\nTo: <b@bench.test>\r\nSubject: bench\r\n\r\nhello\r\n"


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: sessions_tls.py PORT [TOTAL] [WORKERS]")
    port = int(sys.argv[1])
    total = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    lock = threading.Lock()
    counts = {"next": 0, "done": 0, "failed": 0}
    first_error = []

    def session():
        with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.test", timeout=20) as s:
            s.ehlo()
            s.starttls(context=context)
            s.ehlo()
            s.sendmail("a@bench.test", ["b@bench.test"], MESSAGE)
            s.quit()

    def worker():
        while True:  # bounded: each turn takes one of TOTAL numbers
            with lock:
                if counts["next"] >= total:
                    return
                counts["next"] += 1
            try:
                session()
                ok = True
            except (OSError, smtplib.SMTPException) as error:
                ok = False
                if not first_error:
                    first_error.append(repr(error))
            with lock:
                counts["done" if ok else "failed"] += 1

    # Small stacks: hundreds of threads.
    threading.stack_size(256 * 1024)
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    started, cpu_started = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    done, failed = counts["done"], counts["failed"]
    print(f"python smtplib (STARTTLS, threads): {done} sessions in {seconds:.2f} s = "
          f"{done / seconds:.0f}/s ({failed} failed), {workers} at once, "
          f"CPU {cpu * 1e6 / max(1, done + failed):.0f} us per session")
    if first_error:
        print(f"python smtplib: first failure: {first_error[0]}", file=sys.stderr)
    sys.exit(1 if failed > total // 100 else 0)


if __name__ == "__main__":
    main()
